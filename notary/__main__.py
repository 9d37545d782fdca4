from notary.cli.main import main

main()
