from megatui.cli import main

main()
