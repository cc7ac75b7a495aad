from musegen.cli import main

main()
