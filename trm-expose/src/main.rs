fn main() {
    trm_expose::main()
}
