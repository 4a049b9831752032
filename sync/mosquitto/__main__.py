"""``python -m sync.mosquitto CONF_DIR DATA_DIR``: print the district broker configuration."""

import sys

from sync.mosquitto import render

if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m sync.mosquitto CONF_DIR DATA_DIR  (copy district.acl into CONF_DIR)")
    from pathlib import Path

    print(render(Path(sys.argv[1]), Path(sys.argv[2])))
