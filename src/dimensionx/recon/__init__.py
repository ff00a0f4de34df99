"""Video -> cameras (pycolmap SfM) -> 3D Gaussian scene (gsplat), and the files other tools open."""
