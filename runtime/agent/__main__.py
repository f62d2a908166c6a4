import sys

from runtime.agent.main import main

sys.exit(main())
