"""Copy each PNG and JPEG image in the current directory to ``<name>-copy<ext>``.

The project's images arrive in the run directory as symlinks; the copies are
regular files, so they are output the run generated.
"""

import os
import shutil

IMAGE_EXTENSIONS = (".png", ".jpg")


def main() -> None:
    for name in sorted(os.listdir(".")):
        stem, ext = os.path.splitext(name)
        if ext.lower() not in IMAGE_EXTENSIONS or stem.endswith("-copy"):
            continue
        copy = f"{stem}-copy{ext}"
        shutil.copyfile(name, copy)  # follows the symlink: the copy is a regular file
        print(f"copied {name} to {copy}")


if __name__ == "__main__":
    main()
