from earning.main import main

main()
