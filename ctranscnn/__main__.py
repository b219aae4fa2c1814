import sys

from ctranscnn.cli import main

sys.exit(main())
