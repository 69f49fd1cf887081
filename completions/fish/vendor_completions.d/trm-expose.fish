# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_trm_expose_global_optspecs
    string join \n format= project= h/help V/version
end

function __fish_trm_expose_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_trm_expose_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_trm_expose_using_subcommand
    set -l cmd (__fish_trm_expose_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c trm-expose -n "__fish_trm_expose_needs_command" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-expose -n "__fish_trm_expose_needs_command" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-expose -n "__fish_trm_expose_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-expose -n "__fish_trm_expose_needs_command" -s V -l version -d 'Print version'
complete -c trm-expose -n "__fish_trm_expose_needs_command" -f -a "add" -d 'Expose a port of an instance: an HTTP(S) route or a raw TCP/UDP port'
complete -c trm-expose -n "__fish_trm_expose_needs_command" -f -a "remove" -d 'Take an exposure away'
complete -c trm-expose -n "__fish_trm_expose_needs_command" -f -a "list" -d 'Every public route and port: instance, public address, backend, state, auth'
complete -c trm-expose -n "__fish_trm_expose_needs_command" -f -a "check" -d 'Everything sync would say of a label, without setting it: grammar, reserved and busy host ports, management hosts, other instances\' claims'
complete -c trm-expose -n "__fish_trm_expose_needs_command" -f -a "sync" -d 'Reconcile Traefik files, entrypoints and firewall rules from LXD now'
complete -c trm-expose -n "__fish_trm_expose_needs_command" -f -a "watch" -d 'Follow LXD\'s lifecycle events and re-sync after starts, stops and label changes'
complete -c trm-expose -n "__fish_trm_expose_needs_command" -f -a "proxy" -d 'Run Traefik as a supervised service: start, stop, restart, or status (up, version, and whether it loaded Terrarium\'s routes)'
complete -c trm-expose -n "__fish_trm_expose_needs_command" -f -a "service" -d 'Install, remove or report the watcher service and its periodic sync timer'
complete -c trm-expose -n "__fish_trm_expose_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c trm-expose -n "__fish_trm_expose_using_subcommand add" -l port -d 'Container port of an HTTP service (routed by host name through Traefik)' -r
complete -c trm-expose -n "__fish_trm_expose_using_subcommand add" -l host -d 'Public host name [default: NAME.<root domain>, or NAME.<dashed IPv4>.traefik.me]' -r
complete -c trm-expose -n "__fish_trm_expose_using_subcommand add" -l path -d 'Route only this path prefix' -r
complete -c trm-expose -n "__fish_trm_expose_using_subcommand add" -l auth -d 'Behind single sign-on; with groups, only their members pass' -r
complete -c trm-expose -n "__fish_trm_expose_using_subcommand add" -l share -d 'Let other instances route this path of the host, and the paths below it (share://HOST/PATH); a host is otherwise all its holder\'s' -r
complete -c trm-expose -n "__fish_trm_expose_using_subcommand add" -l tcp -d 'Raw TCP port on the host: HOSTPORT[:CPORT]' -r
complete -c trm-expose -n "__fish_trm_expose_using_subcommand add" -l udp -d 'Raw UDP port on the host: HOSTPORT[:CPORT]' -r
complete -c trm-expose -n "__fish_trm_expose_using_subcommand add" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-expose -n "__fish_trm_expose_using_subcommand add" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-expose -n "__fish_trm_expose_using_subcommand add" -l http -d 'Plain HTTP instead of HTTPS'
complete -c trm-expose -n "__fish_trm_expose_using_subcommand add" -l dry-run -d 'Print the new label; change nothing'
complete -c trm-expose -n "__fish_trm_expose_using_subcommand add" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-expose -n "__fish_trm_expose_using_subcommand remove" -l host -d 'The HTTP(S) routes of this host' -r
complete -c trm-expose -n "__fish_trm_expose_using_subcommand remove" -l tcp -d 'The raw TCP host port' -r
complete -c trm-expose -n "__fish_trm_expose_using_subcommand remove" -l udp -d 'The raw UDP host port' -r
complete -c trm-expose -n "__fish_trm_expose_using_subcommand remove" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-expose -n "__fish_trm_expose_using_subcommand remove" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-expose -n "__fish_trm_expose_using_subcommand remove" -l all -d 'Every exposure of the instance'
complete -c trm-expose -n "__fish_trm_expose_using_subcommand remove" -l dry-run -d 'Print the new label; change nothing'
complete -c trm-expose -n "__fish_trm_expose_using_subcommand remove" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-expose -n "__fish_trm_expose_using_subcommand list" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-expose -n "__fish_trm_expose_using_subcommand list" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-expose -n "__fish_trm_expose_using_subcommand list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-expose -n "__fish_trm_expose_using_subcommand check" -l instance -d 'Judge it as this instance\'s whole label [default: a new instance, which loses every contested claim]' -r
complete -c trm-expose -n "__fish_trm_expose_using_subcommand check" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-expose -n "__fish_trm_expose_using_subcommand check" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-expose -n "__fish_trm_expose_using_subcommand check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-expose -n "__fish_trm_expose_using_subcommand sync" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-expose -n "__fish_trm_expose_using_subcommand sync" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-expose -n "__fish_trm_expose_using_subcommand sync" -l dry-run -d 'Print what would change; change nothing'
complete -c trm-expose -n "__fish_trm_expose_using_subcommand sync" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-expose -n "__fish_trm_expose_using_subcommand watch" -l interval -d 'Seconds between full syncs (a backstop for missed events)' -r
complete -c trm-expose -n "__fish_trm_expose_using_subcommand watch" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-expose -n "__fish_trm_expose_using_subcommand watch" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-expose -n "__fish_trm_expose_using_subcommand watch" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-expose -n "__fish_trm_expose_using_subcommand proxy" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-expose -n "__fish_trm_expose_using_subcommand proxy" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-expose -n "__fish_trm_expose_using_subcommand proxy" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-expose -n "__fish_trm_expose_using_subcommand service" -l unit-dir -d 'Where unit files go' -r -F
complete -c trm-expose -n "__fish_trm_expose_using_subcommand service" -l every -d 'Minutes between backstop full syncs' -r
complete -c trm-expose -n "__fish_trm_expose_using_subcommand service" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-expose -n "__fish_trm_expose_using_subcommand service" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-expose -n "__fish_trm_expose_using_subcommand service" -l dry-run -d 'Print what would be done; change nothing'
complete -c trm-expose -n "__fish_trm_expose_using_subcommand service" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-expose -n "__fish_trm_expose_using_subcommand help; and not __fish_seen_subcommand_from add remove list check sync watch proxy service help" -f -a "add" -d 'Expose a port of an instance: an HTTP(S) route or a raw TCP/UDP port'
complete -c trm-expose -n "__fish_trm_expose_using_subcommand help; and not __fish_seen_subcommand_from add remove list check sync watch proxy service help" -f -a "remove" -d 'Take an exposure away'
complete -c trm-expose -n "__fish_trm_expose_using_subcommand help; and not __fish_seen_subcommand_from add remove list check sync watch proxy service help" -f -a "list" -d 'Every public route and port: instance, public address, backend, state, auth'
complete -c trm-expose -n "__fish_trm_expose_using_subcommand help; and not __fish_seen_subcommand_from add remove list check sync watch proxy service help" -f -a "check" -d 'Everything sync would say of a label, without setting it: grammar, reserved and busy host ports, management hosts, other instances\' claims'
complete -c trm-expose -n "__fish_trm_expose_using_subcommand help; and not __fish_seen_subcommand_from add remove list check sync watch proxy service help" -f -a "sync" -d 'Reconcile Traefik files, entrypoints and firewall rules from LXD now'
complete -c trm-expose -n "__fish_trm_expose_using_subcommand help; and not __fish_seen_subcommand_from add remove list check sync watch proxy service help" -f -a "watch" -d 'Follow LXD\'s lifecycle events and re-sync after starts, stops and label changes'
complete -c trm-expose -n "__fish_trm_expose_using_subcommand help; and not __fish_seen_subcommand_from add remove list check sync watch proxy service help" -f -a "proxy" -d 'Run Traefik as a supervised service: start, stop, restart, or status (up, version, and whether it loaded Terrarium\'s routes)'
complete -c trm-expose -n "__fish_trm_expose_using_subcommand help; and not __fish_seen_subcommand_from add remove list check sync watch proxy service help" -f -a "service" -d 'Install, remove or report the watcher service and its periodic sync timer'
complete -c trm-expose -n "__fish_trm_expose_using_subcommand help; and not __fish_seen_subcommand_from add remove list check sync watch proxy service help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
