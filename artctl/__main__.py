from artctl.cli import main

main()
