from helmdeck_cli.main import main

raise SystemExit(main())
