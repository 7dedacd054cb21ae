import sys

from asynctask_worker.cli import main

sys.exit(main())
