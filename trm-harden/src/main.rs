fn main() {
    trm_harden::main()
}
