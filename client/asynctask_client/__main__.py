import sys

from asynctask_client.cli import main

sys.exit(main())
