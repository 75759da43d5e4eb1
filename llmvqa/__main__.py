import sys

from llmvqa.cli import main

sys.exit(main())
