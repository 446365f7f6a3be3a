from pgbaton.cli.main import main

main()
