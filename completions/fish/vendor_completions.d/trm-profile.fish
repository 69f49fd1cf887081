# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_trm_profile_global_optspecs
    string join \n format= project= h/help V/version
end

function __fish_trm_profile_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_trm_profile_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_trm_profile_using_subcommand
    set -l cmd (__fish_trm_profile_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c trm-profile -n "__fish_trm_profile_needs_command" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-profile -n "__fish_trm_profile_needs_command" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-profile -n "__fish_trm_profile_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-profile -n "__fish_trm_profile_needs_command" -s V -l version -d 'Print version'
complete -c trm-profile -n "__fish_trm_profile_needs_command" -f -a "list" -d 'List profiles: managed or not, in sync or drifted, how many instances use each'
complete -c trm-profile -n "__fish_trm_profile_needs_command" -f -a "show" -d 'Show one profile as LXD has it'
complete -c trm-profile -n "__fish_trm_profile_needs_command" -f -a "diff" -d 'Show how live profiles differ from Terrarium\'s definitions'
complete -c trm-profile -n "__fish_trm_profile_needs_command" -f -a "apply" -d 'Create missing profiles and restore drifted ones (asks before overwriting hand edits)'
complete -c trm-profile -n "__fish_trm_profile_needs_command" -f -a "explain" -d 'Explain each setting of a profile and why it is there'
complete -c trm-profile -n "__fish_trm_profile_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c trm-profile -n "__fish_trm_profile_using_subcommand list" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-profile -n "__fish_trm_profile_using_subcommand list" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-profile -n "__fish_trm_profile_using_subcommand list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-profile -n "__fish_trm_profile_using_subcommand show" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-profile -n "__fish_trm_profile_using_subcommand show" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-profile -n "__fish_trm_profile_using_subcommand show" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-profile -n "__fish_trm_profile_using_subcommand diff" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-profile -n "__fish_trm_profile_using_subcommand diff" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-profile -n "__fish_trm_profile_using_subcommand diff" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-profile -n "__fish_trm_profile_using_subcommand apply" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-profile -n "__fish_trm_profile_using_subcommand apply" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-profile -n "__fish_trm_profile_using_subcommand apply" -l all -d 'Every Terrarium profile'
complete -c trm-profile -n "__fish_trm_profile_using_subcommand apply" -s y -l yes -d 'Do not ask before overwriting hand edits'
complete -c trm-profile -n "__fish_trm_profile_using_subcommand apply" -l dry-run -d 'Print the plan; change nothing'
complete -c trm-profile -n "__fish_trm_profile_using_subcommand apply" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-profile -n "__fish_trm_profile_using_subcommand explain" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-profile -n "__fish_trm_profile_using_subcommand explain" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-profile -n "__fish_trm_profile_using_subcommand explain" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-profile -n "__fish_trm_profile_using_subcommand help; and not __fish_seen_subcommand_from list show diff apply explain help" -f -a "list" -d 'List profiles: managed or not, in sync or drifted, how many instances use each'
complete -c trm-profile -n "__fish_trm_profile_using_subcommand help; and not __fish_seen_subcommand_from list show diff apply explain help" -f -a "show" -d 'Show one profile as LXD has it'
complete -c trm-profile -n "__fish_trm_profile_using_subcommand help; and not __fish_seen_subcommand_from list show diff apply explain help" -f -a "diff" -d 'Show how live profiles differ from Terrarium\'s definitions'
complete -c trm-profile -n "__fish_trm_profile_using_subcommand help; and not __fish_seen_subcommand_from list show diff apply explain help" -f -a "apply" -d 'Create missing profiles and restore drifted ones (asks before overwriting hand edits)'
complete -c trm-profile -n "__fish_trm_profile_using_subcommand help; and not __fish_seen_subcommand_from list show diff apply explain help" -f -a "explain" -d 'Explain each setting of a profile and why it is there'
complete -c trm-profile -n "__fish_trm_profile_using_subcommand help; and not __fish_seen_subcommand_from list show diff apply explain help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
