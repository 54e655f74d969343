from promptline.cli import main

main()
