# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_trm_gate_global_optspecs
    string join \n format= project= h/help V/version
end

function __fish_trm_gate_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_trm_gate_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_trm_gate_using_subcommand
    set -l cmd (__fish_trm_gate_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c trm-gate -n "__fish_trm_gate_needs_command" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-gate -n "__fish_trm_gate_needs_command" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-gate -n "__fish_trm_gate_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-gate -n "__fish_trm_gate_needs_command" -s V -l version -d 'Print version'
complete -c trm-gate -n "__fish_trm_gate_needs_command" -f -a "serve" -d 'Run the gate in the foreground (what its supervisor runs)'
complete -c trm-gate -n "__fish_trm_gate_needs_command" -f -a "start" -d 'Start the gate under supervision unless it runs; verified'
complete -c trm-gate -n "__fish_trm_gate_needs_command" -f -a "stop" -d 'Stop the gate'
complete -c trm-gate -n "__fish_trm_gate_needs_command" -f -a "restart" -d 'Restart the gate (new settings or keys); verified'
complete -c trm-gate -n "__fish_trm_gate_needs_command" -f -a "status" -d 'Whether the gate runs and answers'
complete -c trm-gate -n "__fish_trm_gate_needs_command" -f -a "keys" -d 'The cookie keys'
complete -c trm-gate -n "__fish_trm_gate_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c trm-gate -n "__fish_trm_gate_using_subcommand serve" -l config -d 'The settings file (default: gate.toml in the settings directory); the supervisor names it, which is how it knows its gate' -r -F
complete -c trm-gate -n "__fish_trm_gate_using_subcommand serve" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-gate -n "__fish_trm_gate_using_subcommand serve" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-gate -n "__fish_trm_gate_using_subcommand serve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-gate -n "__fish_trm_gate_using_subcommand start" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-gate -n "__fish_trm_gate_using_subcommand start" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-gate -n "__fish_trm_gate_using_subcommand start" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-gate -n "__fish_trm_gate_using_subcommand stop" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-gate -n "__fish_trm_gate_using_subcommand stop" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-gate -n "__fish_trm_gate_using_subcommand stop" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-gate -n "__fish_trm_gate_using_subcommand restart" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-gate -n "__fish_trm_gate_using_subcommand restart" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-gate -n "__fish_trm_gate_using_subcommand restart" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-gate -n "__fish_trm_gate_using_subcommand status" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-gate -n "__fish_trm_gate_using_subcommand status" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-gate -n "__fish_trm_gate_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-gate -n "__fish_trm_gate_using_subcommand keys; and not __fish_seen_subcommand_from rotate help" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-gate -n "__fish_trm_gate_using_subcommand keys; and not __fish_seen_subcommand_from rotate help" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-gate -n "__fish_trm_gate_using_subcommand keys; and not __fish_seen_subcommand_from rotate help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-gate -n "__fish_trm_gate_using_subcommand keys; and not __fish_seen_subcommand_from rotate help" -f -a "rotate" -d 'Add a new key for new sessions; sessions under the previous key stay valid until the next rotation'
complete -c trm-gate -n "__fish_trm_gate_using_subcommand keys; and not __fish_seen_subcommand_from rotate help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c trm-gate -n "__fish_trm_gate_using_subcommand keys; and __fish_seen_subcommand_from rotate" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-gate -n "__fish_trm_gate_using_subcommand keys; and __fish_seen_subcommand_from rotate" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-gate -n "__fish_trm_gate_using_subcommand keys; and __fish_seen_subcommand_from rotate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-gate -n "__fish_trm_gate_using_subcommand keys; and __fish_seen_subcommand_from help" -f -a "rotate" -d 'Add a new key for new sessions; sessions under the previous key stay valid until the next rotation'
complete -c trm-gate -n "__fish_trm_gate_using_subcommand keys; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c trm-gate -n "__fish_trm_gate_using_subcommand help; and not __fish_seen_subcommand_from serve start stop restart status keys help" -f -a "serve" -d 'Run the gate in the foreground (what its supervisor runs)'
complete -c trm-gate -n "__fish_trm_gate_using_subcommand help; and not __fish_seen_subcommand_from serve start stop restart status keys help" -f -a "start" -d 'Start the gate under supervision unless it runs; verified'
complete -c trm-gate -n "__fish_trm_gate_using_subcommand help; and not __fish_seen_subcommand_from serve start stop restart status keys help" -f -a "stop" -d 'Stop the gate'
complete -c trm-gate -n "__fish_trm_gate_using_subcommand help; and not __fish_seen_subcommand_from serve start stop restart status keys help" -f -a "restart" -d 'Restart the gate (new settings or keys); verified'
complete -c trm-gate -n "__fish_trm_gate_using_subcommand help; and not __fish_seen_subcommand_from serve start stop restart status keys help" -f -a "status" -d 'Whether the gate runs and answers'
complete -c trm-gate -n "__fish_trm_gate_using_subcommand help; and not __fish_seen_subcommand_from serve start stop restart status keys help" -f -a "keys" -d 'The cookie keys'
complete -c trm-gate -n "__fish_trm_gate_using_subcommand help; and not __fish_seen_subcommand_from serve start stop restart status keys help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c trm-gate -n "__fish_trm_gate_using_subcommand help; and __fish_seen_subcommand_from keys" -f -a "rotate" -d 'Add a new key for new sessions; sessions under the previous key stay valid until the next rotation'
