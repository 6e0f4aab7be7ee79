from rebalancer.localnet.solana_node.cli import main

raise SystemExit(main())
