from kpk_io.cli import main

main()
