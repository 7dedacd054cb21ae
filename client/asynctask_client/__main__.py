import sys

from asynctask_client._script import main

sys.exit(main())
