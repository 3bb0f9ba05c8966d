from dc_overview.frontends.cli import main

main()
