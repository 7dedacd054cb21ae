import sys

from asynctask_operator.cli import main

sys.exit(main())
