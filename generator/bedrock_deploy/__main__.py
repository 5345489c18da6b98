from bedrock_deploy.cli import main

raise SystemExit(main())
