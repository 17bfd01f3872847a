from wallet.main import main

main()
