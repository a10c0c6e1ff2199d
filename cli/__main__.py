from tfinpaint.cli.main import main

main()
