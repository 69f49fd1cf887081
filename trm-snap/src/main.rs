fn main() {
    trm_snap::main()
}
