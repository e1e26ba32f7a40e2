from mbrl_bound_plugin.cli import main

main()
