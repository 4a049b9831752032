"""``python -m edge.tablet_client``: the tablet simulator (see :mod:`edge.tablet_client.simulator`)."""

from edge.tablet_client.simulator import main

raise SystemExit(main())
