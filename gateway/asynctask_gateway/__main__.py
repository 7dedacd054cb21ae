from asynctask_gateway.cli import main

main()
