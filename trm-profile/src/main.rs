fn main() {
    trm_profile::main()
}
