from detkit.data import seg_folder  # noqa: F401  (registers SegFolderDataset)
from detkit.data import seg_transforms  # noqa: F401  (registers RandomCropCatMax, PadToSize)
from detkit.data import tiled  # noqa: F401  (registers TiledDataset)
