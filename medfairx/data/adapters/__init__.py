"""Dataset adapters for real medical-imaging datasets and user CSVs.

Each module exposes ``read_metadata(root, **options) -> pd.DataFrame`` (original files to the
standard metadata frame, with ``frame.attrs["report"]``) and ``load(cfg, *, cache_dir)``.
This package is imported only through lazy targets (it imports pandas, h5py).
"""
