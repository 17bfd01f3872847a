from redemption.main import main

main()
