# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_trm_harden_global_optspecs
    string join \n format= project= wan= sshd-dir= sshd-config= sshd-pid-file= ufw-rootdir= ufw-datadir= systemd-dir= h/help V/version
end

function __fish_trm_harden_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_trm_harden_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_trm_harden_using_subcommand
    set -l cmd (__fish_trm_harden_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c trm-harden -n "__fish_trm_harden_needs_command" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-harden -n "__fish_trm_harden_needs_command" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-harden -n "__fish_trm_harden_needs_command" -l wan -d 'The public interface [default: the interface of the default route]' -r
complete -c trm-harden -n "__fish_trm_harden_needs_command" -l sshd-dir -d 'sshd\'s drop-in directory' -r -F
complete -c trm-harden -n "__fish_trm_harden_needs_command" -l sshd-config -d 'sshd\'s main configuration file (must Include the drop-in directory)' -r -F
complete -c trm-harden -n "__fish_trm_harden_needs_command" -l sshd-pid-file -d 'sshd\'s pid file (sshd is reloaded with SIGHUP)' -r -F
complete -c trm-harden -n "__fish_trm_harden_needs_command" -l ufw-rootdir -d 'ufw --rootdir [default: expose.ufw_rootdir from the settings]' -r -F
complete -c trm-harden -n "__fish_trm_harden_needs_command" -l ufw-datadir -d 'ufw --datadir [default: expose.ufw_datadir from the settings]' -r -F
complete -c trm-harden -n "__fish_trm_harden_needs_command" -l systemd-dir -d 'systemd\'s unit directory (Cockpit\'s socket drop-in goes below it)' -r -F
complete -c trm-harden -n "__fish_trm_harden_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-harden -n "__fish_trm_harden_needs_command" -s V -l version -d 'Print version'
complete -c trm-harden -n "__fish_trm_harden_needs_command" -f -a "plan" -d 'Every change apply would make; changes nothing'
complete -c trm-harden -n "__fish_trm_harden_needs_command" -f -a "apply" -d 'Make the planned changes after one confirmation; a second run changes nothing'
complete -c trm-harden -n "__fish_trm_harden_needs_command" -f -a "audit" -d 'Check every promise on the live host: pass, warn or fail, with its detail and a fix; exit 5 on any fail'
complete -c trm-harden -n "__fish_trm_harden_needs_command" -f -a "oidc" -d 'Configure the single-sign-on gate'
complete -c trm-harden -n "__fish_trm_harden_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c trm-harden -n "__fish_trm_harden_using_subcommand plan" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-harden -n "__fish_trm_harden_using_subcommand plan" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-harden -n "__fish_trm_harden_using_subcommand plan" -l wan -d 'The public interface [default: the interface of the default route]' -r
complete -c trm-harden -n "__fish_trm_harden_using_subcommand plan" -l sshd-dir -d 'sshd\'s drop-in directory' -r -F
complete -c trm-harden -n "__fish_trm_harden_using_subcommand plan" -l sshd-config -d 'sshd\'s main configuration file (must Include the drop-in directory)' -r -F
complete -c trm-harden -n "__fish_trm_harden_using_subcommand plan" -l sshd-pid-file -d 'sshd\'s pid file (sshd is reloaded with SIGHUP)' -r -F
complete -c trm-harden -n "__fish_trm_harden_using_subcommand plan" -l ufw-rootdir -d 'ufw --rootdir [default: expose.ufw_rootdir from the settings]' -r -F
complete -c trm-harden -n "__fish_trm_harden_using_subcommand plan" -l ufw-datadir -d 'ufw --datadir [default: expose.ufw_datadir from the settings]' -r -F
complete -c trm-harden -n "__fish_trm_harden_using_subcommand plan" -l systemd-dir -d 'systemd\'s unit directory (Cockpit\'s socket drop-in goes below it)' -r -F
complete -c trm-harden -n "__fish_trm_harden_using_subcommand plan" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-harden -n "__fish_trm_harden_using_subcommand apply" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-harden -n "__fish_trm_harden_using_subcommand apply" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-harden -n "__fish_trm_harden_using_subcommand apply" -l wan -d 'The public interface [default: the interface of the default route]' -r
complete -c trm-harden -n "__fish_trm_harden_using_subcommand apply" -l sshd-dir -d 'sshd\'s drop-in directory' -r -F
complete -c trm-harden -n "__fish_trm_harden_using_subcommand apply" -l sshd-config -d 'sshd\'s main configuration file (must Include the drop-in directory)' -r -F
complete -c trm-harden -n "__fish_trm_harden_using_subcommand apply" -l sshd-pid-file -d 'sshd\'s pid file (sshd is reloaded with SIGHUP)' -r -F
complete -c trm-harden -n "__fish_trm_harden_using_subcommand apply" -l ufw-rootdir -d 'ufw --rootdir [default: expose.ufw_rootdir from the settings]' -r -F
complete -c trm-harden -n "__fish_trm_harden_using_subcommand apply" -l ufw-datadir -d 'ufw --datadir [default: expose.ufw_datadir from the settings]' -r -F
complete -c trm-harden -n "__fish_trm_harden_using_subcommand apply" -l systemd-dir -d 'systemd\'s unit directory (Cockpit\'s socket drop-in goes below it)' -r -F
complete -c trm-harden -n "__fish_trm_harden_using_subcommand apply" -s y -l yes -d 'Do not ask for confirmation'
complete -c trm-harden -n "__fish_trm_harden_using_subcommand apply" -l force -d 'Switch SSH passwords off even when no account that can log in has an authorized key'
complete -c trm-harden -n "__fish_trm_harden_using_subcommand apply" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-harden -n "__fish_trm_harden_using_subcommand audit" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-harden -n "__fish_trm_harden_using_subcommand audit" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-harden -n "__fish_trm_harden_using_subcommand audit" -l wan -d 'The public interface [default: the interface of the default route]' -r
complete -c trm-harden -n "__fish_trm_harden_using_subcommand audit" -l sshd-dir -d 'sshd\'s drop-in directory' -r -F
complete -c trm-harden -n "__fish_trm_harden_using_subcommand audit" -l sshd-config -d 'sshd\'s main configuration file (must Include the drop-in directory)' -r -F
complete -c trm-harden -n "__fish_trm_harden_using_subcommand audit" -l sshd-pid-file -d 'sshd\'s pid file (sshd is reloaded with SIGHUP)' -r -F
complete -c trm-harden -n "__fish_trm_harden_using_subcommand audit" -l ufw-rootdir -d 'ufw --rootdir [default: expose.ufw_rootdir from the settings]' -r -F
complete -c trm-harden -n "__fish_trm_harden_using_subcommand audit" -l ufw-datadir -d 'ufw --datadir [default: expose.ufw_datadir from the settings]' -r -F
complete -c trm-harden -n "__fish_trm_harden_using_subcommand audit" -l systemd-dir -d 'systemd\'s unit directory (Cockpit\'s socket drop-in goes below it)' -r -F
complete -c trm-harden -n "__fish_trm_harden_using_subcommand audit" -l members -d 'Every member\'s last audit instead: which member fails which check (exit 5 if any, or if one never audited in a day)'
complete -c trm-harden -n "__fish_trm_harden_using_subcommand audit" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-harden -n "__fish_trm_harden_using_subcommand oidc; and not __fish_seen_subcommand_from set help" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-harden -n "__fish_trm_harden_using_subcommand oidc; and not __fish_seen_subcommand_from set help" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-harden -n "__fish_trm_harden_using_subcommand oidc; and not __fish_seen_subcommand_from set help" -l wan -d 'The public interface [default: the interface of the default route]' -r
complete -c trm-harden -n "__fish_trm_harden_using_subcommand oidc; and not __fish_seen_subcommand_from set help" -l sshd-dir -d 'sshd\'s drop-in directory' -r -F
complete -c trm-harden -n "__fish_trm_harden_using_subcommand oidc; and not __fish_seen_subcommand_from set help" -l sshd-config -d 'sshd\'s main configuration file (must Include the drop-in directory)' -r -F
complete -c trm-harden -n "__fish_trm_harden_using_subcommand oidc; and not __fish_seen_subcommand_from set help" -l sshd-pid-file -d 'sshd\'s pid file (sshd is reloaded with SIGHUP)' -r -F
complete -c trm-harden -n "__fish_trm_harden_using_subcommand oidc; and not __fish_seen_subcommand_from set help" -l ufw-rootdir -d 'ufw --rootdir [default: expose.ufw_rootdir from the settings]' -r -F
complete -c trm-harden -n "__fish_trm_harden_using_subcommand oidc; and not __fish_seen_subcommand_from set help" -l ufw-datadir -d 'ufw --datadir [default: expose.ufw_datadir from the settings]' -r -F
complete -c trm-harden -n "__fish_trm_harden_using_subcommand oidc; and not __fish_seen_subcommand_from set help" -l systemd-dir -d 'systemd\'s unit directory (Cockpit\'s socket drop-in goes below it)' -r -F
complete -c trm-harden -n "__fish_trm_harden_using_subcommand oidc; and not __fish_seen_subcommand_from set help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-harden -n "__fish_trm_harden_using_subcommand oidc; and not __fish_seen_subcommand_from set help" -f -a "set" -d 'Check the issuer\'s discovery document, then write trm-gate\'s settings, the management routes and LXD\'s oidc.* keys'
complete -c trm-harden -n "__fish_trm_harden_using_subcommand oidc; and not __fish_seen_subcommand_from set help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c trm-harden -n "__fish_trm_harden_using_subcommand oidc; and __fish_seen_subcommand_from set" -l issuer -d 'The OIDC issuer URL (its /.well-known/openid-configuration must name it)' -r
complete -c trm-harden -n "__fish_trm_harden_using_subcommand oidc; and __fish_seen_subcommand_from set" -l client-id -r
complete -c trm-harden -n "__fish_trm_harden_using_subcommand oidc; and __fish_seen_subcommand_from set" -l client-secret-file -d 'A file holding the client secret (copied to a 0600 file beside the gate\'s configuration)' -r -F
complete -c trm-harden -n "__fish_trm_harden_using_subcommand oidc; and __fish_seen_subcommand_from set" -l admin-group -d 'Only members of this group pass the gate to the dashboards (manage., proxy.)' -r
complete -c trm-harden -n "__fish_trm_harden_using_subcommand oidc; and __fish_seen_subcommand_from set" -l groups-claim -d 'The ID token claim that lists a user\'s groups' -r
complete -c trm-harden -n "__fish_trm_harden_using_subcommand oidc; and __fish_seen_subcommand_from set" -l auth-url -d 'The sign-in host\'s URL, https://auth.<root domain>[:PORT] [default: on the public HTTPS port]' -r
complete -c trm-harden -n "__fish_trm_harden_using_subcommand oidc; and __fish_seen_subcommand_from set" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-harden -n "__fish_trm_harden_using_subcommand oidc; and __fish_seen_subcommand_from set" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-harden -n "__fish_trm_harden_using_subcommand oidc; and __fish_seen_subcommand_from set" -l wan -d 'The public interface [default: the interface of the default route]' -r
complete -c trm-harden -n "__fish_trm_harden_using_subcommand oidc; and __fish_seen_subcommand_from set" -l sshd-dir -d 'sshd\'s drop-in directory' -r -F
complete -c trm-harden -n "__fish_trm_harden_using_subcommand oidc; and __fish_seen_subcommand_from set" -l sshd-config -d 'sshd\'s main configuration file (must Include the drop-in directory)' -r -F
complete -c trm-harden -n "__fish_trm_harden_using_subcommand oidc; and __fish_seen_subcommand_from set" -l sshd-pid-file -d 'sshd\'s pid file (sshd is reloaded with SIGHUP)' -r -F
complete -c trm-harden -n "__fish_trm_harden_using_subcommand oidc; and __fish_seen_subcommand_from set" -l ufw-rootdir -d 'ufw --rootdir [default: expose.ufw_rootdir from the settings]' -r -F
complete -c trm-harden -n "__fish_trm_harden_using_subcommand oidc; and __fish_seen_subcommand_from set" -l ufw-datadir -d 'ufw --datadir [default: expose.ufw_datadir from the settings]' -r -F
complete -c trm-harden -n "__fish_trm_harden_using_subcommand oidc; and __fish_seen_subcommand_from set" -l systemd-dir -d 'systemd\'s unit directory (Cockpit\'s socket drop-in goes below it)' -r -F
complete -c trm-harden -n "__fish_trm_harden_using_subcommand oidc; and __fish_seen_subcommand_from set" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-harden -n "__fish_trm_harden_using_subcommand oidc; and __fish_seen_subcommand_from help" -f -a "set" -d 'Check the issuer\'s discovery document, then write trm-gate\'s settings, the management routes and LXD\'s oidc.* keys'
complete -c trm-harden -n "__fish_trm_harden_using_subcommand oidc; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c trm-harden -n "__fish_trm_harden_using_subcommand help; and not __fish_seen_subcommand_from plan apply audit oidc help" -f -a "plan" -d 'Every change apply would make; changes nothing'
complete -c trm-harden -n "__fish_trm_harden_using_subcommand help; and not __fish_seen_subcommand_from plan apply audit oidc help" -f -a "apply" -d 'Make the planned changes after one confirmation; a second run changes nothing'
complete -c trm-harden -n "__fish_trm_harden_using_subcommand help; and not __fish_seen_subcommand_from plan apply audit oidc help" -f -a "audit" -d 'Check every promise on the live host: pass, warn or fail, with its detail and a fix; exit 5 on any fail'
complete -c trm-harden -n "__fish_trm_harden_using_subcommand help; and not __fish_seen_subcommand_from plan apply audit oidc help" -f -a "oidc" -d 'Configure the single-sign-on gate'
complete -c trm-harden -n "__fish_trm_harden_using_subcommand help; and not __fish_seen_subcommand_from plan apply audit oidc help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c trm-harden -n "__fish_trm_harden_using_subcommand help; and __fish_seen_subcommand_from oidc" -f -a "set" -d 'Check the issuer\'s discovery document, then write trm-gate\'s settings, the management routes and LXD\'s oidc.* keys'
