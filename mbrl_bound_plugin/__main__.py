from mbrl_bound_plugin.cli.main import main

main()
