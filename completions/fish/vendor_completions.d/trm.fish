# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_trm_global_optspecs
    string join \n format= project= h/help V/version
end

function __fish_trm_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_trm_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_trm_using_subcommand
    set -l cmd (__fish_trm_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c trm -n "__fish_trm_needs_command" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm -n "__fish_trm_needs_command" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm -n "__fish_trm_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm -n "__fish_trm_needs_command" -s V -l version -d 'Print version'
complete -c trm -n "__fish_trm_needs_command" -f -a "config" -d 'This host\'s configuration as one document, to carry to a new server'
complete -c trm -n "__fish_trm_needs_command" -f -a "status" -d 'The whole host at a glance: LXD, Traefik, the gate, the timers, the last sync\'s problems, each box\'s newest snapshot and backup, the pool'
complete -c trm -n "__fish_trm_needs_command" -f -a "init" -d 'Bring this host to the Terrarium baseline (idempotent)'
complete -c trm -n "__fish_trm_needs_command" -f -a "image" -d 'Build and import the Debian 12 base image'
complete -c trm -n "__fish_trm_needs_command" -f -a "launch" -d 'Launch a container and wait for cloud-init to finish'
complete -c trm -n "__fish_trm_needs_command" -f -a "exec" -d 'Run a shell or a command in a container as the `terrarium` user'
complete -c trm -n "__fish_trm_needs_command" -f -a "cluster" -d 'More than one server: this host as a member of an LXD cluster'
complete -c trm -n "__fish_trm_needs_command" -f -a "list" -d 'List containers'
complete -c trm -n "__fish_trm_needs_command" -f -a "info" -d 'Show one container'
complete -c trm -n "__fish_trm_needs_command" -f -a "start" -d 'Start a container'
complete -c trm -n "__fish_trm_needs_command" -f -a "stop" -d 'Stop a container'
complete -c trm -n "__fish_trm_needs_command" -f -a "restart" -d 'Restart a running container'
complete -c trm -n "__fish_trm_needs_command" -f -a "delete" -d 'Delete a container and its snapshots (asks first)'
complete -c trm -n "__fish_trm_needs_command" -f -a "doctor" -d 'Check what a nested-Docker box needs; print each finding with a fix'
complete -c trm -n "__fish_trm_needs_command" -f -a "cp" -d 'Copy one file between the host and a box\'s home, as the terrarium user'
complete -c trm -n "__fish_trm_needs_command" -f -a "policy" -d 'An agent box\'s egress policy (what it may reach besides its DNS)'
complete -c trm -n "__fish_trm_needs_command" -f -a "mcp" -d 'Serve an agent over MCP (stdio), limited to the boxes named here'
complete -c trm -n "__fish_trm_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c trm -n "__fish_trm_using_subcommand config; and not __fish_seen_subcommand_from export import help" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm -n "__fish_trm_using_subcommand config; and not __fish_seen_subcommand_from export import help" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm -n "__fish_trm_using_subcommand config; and not __fish_seen_subcommand_from export import help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm -n "__fish_trm_using_subcommand config; and not __fish_seen_subcommand_from export import help" -f -a "export" -d 'Print (or write) settings, profiles, labels, snapshot opt-outs and the gate\'s and bucket\'s settings; never a secret'
complete -c trm -n "__fish_trm_using_subcommand config; and not __fish_seen_subcommand_from export import help" -f -a "import" -d 'Plan what a document changes here, then apply it (asks first); says which secrets are still needed'
complete -c trm -n "__fish_trm_using_subcommand config; and not __fish_seen_subcommand_from export import help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c trm -n "__fish_trm_using_subcommand config; and __fish_seen_subcommand_from export" -s o -l output -d 'Write the document here (mode 0600) instead of stdout' -r -F
complete -c trm -n "__fish_trm_using_subcommand config; and __fish_seen_subcommand_from export" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm -n "__fish_trm_using_subcommand config; and __fish_seen_subcommand_from export" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm -n "__fish_trm_using_subcommand config; and __fish_seen_subcommand_from export" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm -n "__fish_trm_using_subcommand config; and __fish_seen_subcommand_from import" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm -n "__fish_trm_using_subcommand config; and __fish_seen_subcommand_from import" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm -n "__fish_trm_using_subcommand config; and __fish_seen_subcommand_from import" -l dry-run -d 'Print the plan; change nothing'
complete -c trm -n "__fish_trm_using_subcommand config; and __fish_seen_subcommand_from import" -s y -l yes -d 'Do not ask for confirmation'
complete -c trm -n "__fish_trm_using_subcommand config; and __fish_seen_subcommand_from import" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm -n "__fish_trm_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "export" -d 'Print (or write) settings, profiles, labels, snapshot opt-outs and the gate\'s and bucket\'s settings; never a secret'
complete -c trm -n "__fish_trm_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "import" -d 'Plan what a document changes here, then apply it (asks first); says which secrets are still needed'
complete -c trm -n "__fish_trm_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c trm -n "__fish_trm_using_subcommand status" -l now -d 'Judge as of this time (RFC 3339) instead of now, for what-ifs' -r
complete -c trm -n "__fish_trm_using_subcommand status" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm -n "__fish_trm_using_subcommand status" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm -n "__fish_trm_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm -n "__fish_trm_using_subcommand init" -l storage -d 'Storage driver for a new pool [default: zfs if the kernel has it, else btrfs, else dir]' -r -f -a "zfs\t''
btrfs\t''
dir\t''
lvm\t''"
complete -c trm -n "__fish_trm_using_subcommand init" -l size -d 'Size of a new loop-file pool (zfs, btrfs), e.g. 30GiB [default: LXD\'s choice]' -r
complete -c trm -n "__fish_trm_using_subcommand init" -l pool -d 'Name of the storage pool' -r
complete -c trm -n "__fish_trm_using_subcommand init" -l bridge -d 'Name of the private bridge' -r
complete -c trm -n "__fish_trm_using_subcommand init" -l subnet -d 'Bridge address and prefix, e.g. 10.87.0.1/24 [default: a free /24 in 10.100-254.x.0]' -r
complete -c trm -n "__fish_trm_using_subcommand init" -l image -d 'Image `trm launch` uses by default' -r
complete -c trm -n "__fish_trm_using_subcommand init" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm -n "__fish_trm_using_subcommand init" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm -n "__fish_trm_using_subcommand init" -l no-nat -d 'Give containers no outbound NAT (they reach only the host and each other)'
complete -c trm -n "__fish_trm_using_subcommand init" -l dry-run -d 'Print the plan; change nothing'
complete -c trm -n "__fish_trm_using_subcommand init" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm -n "__fish_trm_using_subcommand image; and not __fish_seen_subcommand_from build create list delete help" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm -n "__fish_trm_using_subcommand image; and not __fish_seen_subcommand_from build create list delete help" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm -n "__fish_trm_using_subcommand image; and not __fish_seen_subcommand_from build create list delete help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm -n "__fish_trm_using_subcommand image; and not __fish_seen_subcommand_from build create list delete help" -f -a "build" -d 'Build the base image with debootstrap and import it (cached)'
complete -c trm -n "__fish_trm_using_subcommand image; and not __fish_seen_subcommand_from build create list delete help" -f -a "create" -d 'Publish a configured box as a golden image, from a wiped temporary copy'
complete -c trm -n "__fish_trm_using_subcommand image; and not __fish_seen_subcommand_from build create list delete help" -f -a "list" -d 'List the images boxes launch from: base, golden (with their source) and others'
complete -c trm -n "__fish_trm_using_subcommand image; and not __fish_seen_subcommand_from build create list delete help" -f -a "delete" -d 'Delete an image (asks first); boxes launched from it keep running'
complete -c trm -n "__fish_trm_using_subcommand image; and not __fish_seen_subcommand_from build create list delete help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c trm -n "__fish_trm_using_subcommand image; and __fish_seen_subcommand_from build" -l release -d 'Debian release to build from' -r -f -a "bookworm\t'Debian 12, what Terrarium\'s hosts run'
trixie\t'Debian 13, the current stable'"
complete -c trm -n "__fish_trm_using_subcommand image; and __fish_seen_subcommand_from build" -l alias -d 'Alias to import the image under [default: terrarium/debian12, or terrarium/debian13 for trixie]' -r
complete -c trm -n "__fish_trm_using_subcommand image; and __fish_seen_subcommand_from build" -l mirror -d 'Debian mirror [default: the one in this host\'s apt sources]' -r
complete -c trm -n "__fish_trm_using_subcommand image; and __fish_seen_subcommand_from build" -l package -d 'Extra Debian package to install (repeatable), e.g. docker.io for a Docker-ready variant' -r
complete -c trm -n "__fish_trm_using_subcommand image; and __fish_seen_subcommand_from build" -l cache-dir -d 'Where built tarballs are kept for reuse' -r -F
complete -c trm -n "__fish_trm_using_subcommand image; and __fish_seen_subcommand_from build" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm -n "__fish_trm_using_subcommand image; and __fish_seen_subcommand_from build" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm -n "__fish_trm_using_subcommand image; and __fish_seen_subcommand_from build" -l rebuild -d 'Build anew even if the image or cached tarballs exist'
complete -c trm -n "__fish_trm_using_subcommand image; and __fish_seen_subcommand_from build" -l dry-run -d 'Print what would happen; change nothing'
complete -c trm -n "__fish_trm_using_subcommand image; and __fish_seen_subcommand_from build" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm -n "__fish_trm_using_subcommand image; and __fish_seen_subcommand_from create" -l from -d 'The configured box to publish' -r
complete -c trm -n "__fish_trm_using_subcommand image; and __fish_seen_subcommand_from create" -l snapshot -d 'Publish this snapshot of it instead of its current state' -r
complete -c trm -n "__fish_trm_using_subcommand image; and __fish_seen_subcommand_from create" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm -n "__fish_trm_using_subcommand image; and __fish_seen_subcommand_from create" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm -n "__fish_trm_using_subcommand image; and __fish_seen_subcommand_from create" -l keep-keys -d 'Keep the authorized SSH keys (of root and every user) in the image'
complete -c trm -n "__fish_trm_using_subcommand image; and __fish_seen_subcommand_from create" -l dry-run -d 'Print the plan; change nothing'
complete -c trm -n "__fish_trm_using_subcommand image; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm -n "__fish_trm_using_subcommand image; and __fish_seen_subcommand_from list" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm -n "__fish_trm_using_subcommand image; and __fish_seen_subcommand_from list" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm -n "__fish_trm_using_subcommand image; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm -n "__fish_trm_using_subcommand image; and __fish_seen_subcommand_from delete" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm -n "__fish_trm_using_subcommand image; and __fish_seen_subcommand_from delete" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm -n "__fish_trm_using_subcommand image; and __fish_seen_subcommand_from delete" -s y -l yes -d 'Do not ask for confirmation'
complete -c trm -n "__fish_trm_using_subcommand image; and __fish_seen_subcommand_from delete" -l dry-run -d 'Print what would be deleted; change nothing'
complete -c trm -n "__fish_trm_using_subcommand image; and __fish_seen_subcommand_from delete" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm -n "__fish_trm_using_subcommand image; and __fish_seen_subcommand_from help" -f -a "build" -d 'Build the base image with debootstrap and import it (cached)'
complete -c trm -n "__fish_trm_using_subcommand image; and __fish_seen_subcommand_from help" -f -a "create" -d 'Publish a configured box as a golden image, from a wiped temporary copy'
complete -c trm -n "__fish_trm_using_subcommand image; and __fish_seen_subcommand_from help" -f -a "list" -d 'List the images boxes launch from: base, golden (with their source) and others'
complete -c trm -n "__fish_trm_using_subcommand image; and __fish_seen_subcommand_from help" -f -a "delete" -d 'Delete an image (asks first); boxes launched from it keep running'
complete -c trm -n "__fish_trm_using_subcommand image; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c trm -n "__fish_trm_using_subcommand launch" -l image -d 'Image alias or fingerprint [default: the image set by `trm init`]' -r
complete -c trm -n "__fish_trm_using_subcommand launch" -s p -l profile -d 'Profile to apply (repeat for several; order matters) [default: default]' -r
complete -c trm -n "__fish_trm_using_subcommand launch" -s c -l config -d 'Instance config KEY=VALUE, e.g. cloud-init.user-data=... (repeatable)' -r
complete -c trm -n "__fish_trm_using_subcommand launch" -l timeout -d 'Seconds to wait for cloud-init' -r
complete -c trm -n "__fish_trm_using_subcommand launch" -l cpu -d 'At most this many CPUs (LXD\'s limits.cpu) [default: the profile\'s]' -r
complete -c trm -n "__fish_trm_using_subcommand launch" -l memory -d 'At most this much memory, e.g. 512MiB, 2GiB (limits.memory); a hog is OOM-killed inside' -r
complete -c trm -n "__fish_trm_using_subcommand launch" -l disk -d 'A root disk quota, e.g. 10GiB, where the pool\'s driver has quotas (btrfs, zfs, lvm)' -r
complete -c trm -n "__fish_trm_using_subcommand launch" -l idle -d 'Stop the box after this long with no exec session and little CPU (30m, 2h), at the next `trm-snap auto` tick' -r
complete -c trm -n "__fish_trm_using_subcommand launch" -l ttl -d 'Delete the box this long after launch (8h, 2d), at the first `trm-snap auto` tick after it' -r
complete -c trm -n "__fish_trm_using_subcommand launch" -l cloud-init -d 'Your own cloud-init user-data (#cloud-config or a #! script); the profile\'s terrarium user still applies' -r -F
complete -c trm -n "__fish_trm_using_subcommand launch" -l file -d 'A host file placed below /home/terrarium before the first boot, owned by terrarium (repeatable)' -r
complete -c trm -n "__fish_trm_using_subcommand launch" -l docker-compose -d 'A compose file brought up as terrarium once cloud-init is done (needs Docker in the image and nesting)' -r -F
complete -c trm -n "__fish_trm_using_subcommand launch" -l proxy -d 'Expose the box with this label (as user.proxy), checked first, applied once it is up' -r
complete -c trm -n "__fish_trm_using_subcommand launch" -l wait-http -d 'Expose only once http://BOX:PORT/ answers (any HTTP status), within --timeout' -r
complete -c trm -n "__fish_trm_using_subcommand launch" -l target -d 'On a cluster, the member to place it on [default: LXD\'s choice]' -r
complete -c trm -n "__fish_trm_using_subcommand launch" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm -n "__fish_trm_using_subcommand launch" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm -n "__fish_trm_using_subcommand launch" -l no-wait -d 'Return once started, without waiting for cloud-init'
complete -c trm -n "__fish_trm_using_subcommand launch" -l dry-run -d 'Print what would be launched; change nothing'
complete -c trm -n "__fish_trm_using_subcommand launch" -l ttl-export -d 'Export the box off-site (trm-snap export) before its --ttl delete; if that fails it is kept, stopped'
complete -c trm -n "__fish_trm_using_subcommand launch" -l rm-on-failure -d 'If a step fails once the box exists, delete it instead of leaving it to inspect'
complete -c trm -n "__fish_trm_using_subcommand launch" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm -n "__fish_trm_using_subcommand exec" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm -n "__fish_trm_using_subcommand exec" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm -n "__fish_trm_using_subcommand exec" -l root -d 'Run as root (recovery) instead of the terrarium user'
complete -c trm -n "__fish_trm_using_subcommand exec" -l checkpoint -d 'Snapshot the box first (`trm-snap rollback NAME --to last-checkpoint` undoes the command); prints the result as data'
complete -c trm -n "__fish_trm_using_subcommand exec" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm -n "__fish_trm_using_subcommand cluster; and not __fish_seen_subcommand_from init add join evacuate restore remove list mesh help" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm -n "__fish_trm_using_subcommand cluster; and not __fish_seen_subcommand_from init add join evacuate restore remove list mesh help" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm -n "__fish_trm_using_subcommand cluster; and not __fish_seen_subcommand_from init add join evacuate restore remove list mesh help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm -n "__fish_trm_using_subcommand cluster; and not __fish_seen_subcommand_from init add join evacuate restore remove list mesh help" -f -a "init" -d 'Make this host the first member of a new cluster'
complete -c trm -n "__fish_trm_using_subcommand cluster; and not __fish_seen_subcommand_from init add join evacuate restore remove list mesh help" -f -a "add" -d 'Print a join token for a new member NAME (again, if one is unused)'
complete -c trm -n "__fish_trm_using_subcommand cluster; and not __fish_seen_subcommand_from init add join evacuate restore remove list mesh help" -f -a "join" -d 'Join this host to a cluster, with a token from `trm cluster add`'
complete -c trm -n "__fish_trm_using_subcommand cluster; and not __fish_seen_subcommand_from init add join evacuate restore remove list mesh help" -f -a "evacuate" -d 'Move a member\'s instances to the other members (asks first)'
complete -c trm -n "__fish_trm_using_subcommand cluster; and not __fish_seen_subcommand_from init add join evacuate restore remove list mesh help" -f -a "restore" -d 'Bring a member\'s evacuated instances back'
complete -c trm -n "__fish_trm_using_subcommand cluster; and not __fish_seen_subcommand_from init add join evacuate restore remove list mesh help" -f -a "remove" -d 'Remove a member that holds no instances (asks first)'
complete -c trm -n "__fish_trm_using_subcommand cluster; and not __fish_seen_subcommand_from init add join evacuate restore remove list mesh help" -f -a "list" -d 'List the members: address, status, roles, instances'
complete -c trm -n "__fish_trm_using_subcommand cluster; and not __fish_seen_subcommand_from init add join evacuate restore remove list mesh help" -f -a "mesh" -d 'Bring this member\'s part of the private mesh in line (idempotent)'
complete -c trm -n "__fish_trm_using_subcommand cluster; and not __fish_seen_subcommand_from init add join evacuate restore remove list mesh help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from init" -l name -d 'This member\'s name [default: the host name]' -r
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from init" -l address -d 'This host\'s address the other members reach it at (IP[:PORT], port 8443)' -r
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from init" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from init" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from init" -l dry-run -d 'Print what would happen; change nothing'
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from init" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from add" -l address -d 'The new server\'s address: LXD\'s port is opened to it here for its join' -r
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from add" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from add" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from add" -l dry-run -d 'Print what would happen; change nothing'
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from add" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from join" -l address -d 'This host\'s address the other members reach it at (IP[:PORT], port 8443)' -r
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from join" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from join" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from join" -s y -l yes -d 'Do not ask for confirmation (needed with a token on stdin)'
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from join" -l dry-run -d 'Print what would happen; change nothing'
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from join" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from evacuate" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from evacuate" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from evacuate" -s y -l yes -d 'Do not ask for confirmation'
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from evacuate" -l dry-run -d 'Print what would happen; change nothing'
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from evacuate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from restore" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from restore" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from restore" -s y -l yes -d 'Do not ask for confirmation'
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from restore" -l dry-run -d 'Print what would happen; change nothing'
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from restore" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from remove" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from remove" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from remove" -s y -l yes -d 'Do not ask for confirmation'
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from remove" -l dry-run -d 'Print what would happen; change nothing'
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from remove" -l force -d 'Remove a member that is gone for good, with whatever it held'
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from remove" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from list" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from list" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from mesh" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from mesh" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from mesh" -l dry-run -d 'Print what would happen; change nothing'
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from mesh" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "init" -d 'Make this host the first member of a new cluster'
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "add" -d 'Print a join token for a new member NAME (again, if one is unused)'
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "join" -d 'Join this host to a cluster, with a token from `trm cluster add`'
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "evacuate" -d 'Move a member\'s instances to the other members (asks first)'
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "restore" -d 'Bring a member\'s evacuated instances back'
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "remove" -d 'Remove a member that holds no instances (asks first)'
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "list" -d 'List the members: address, status, roles, instances'
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "mesh" -d 'Bring this member\'s part of the private mesh in line (idempotent)'
complete -c trm -n "__fish_trm_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c trm -n "__fish_trm_using_subcommand list" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm -n "__fish_trm_using_subcommand list" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm -n "__fish_trm_using_subcommand list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm -n "__fish_trm_using_subcommand info" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm -n "__fish_trm_using_subcommand info" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm -n "__fish_trm_using_subcommand info" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm -n "__fish_trm_using_subcommand start" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm -n "__fish_trm_using_subcommand start" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm -n "__fish_trm_using_subcommand start" -l force -d 'Stop without waiting for a clean shutdown (stop, restart)'
complete -c trm -n "__fish_trm_using_subcommand start" -l dry-run -d 'Print what would happen; change nothing'
complete -c trm -n "__fish_trm_using_subcommand start" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm -n "__fish_trm_using_subcommand stop" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm -n "__fish_trm_using_subcommand stop" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm -n "__fish_trm_using_subcommand stop" -l force -d 'Stop without waiting for a clean shutdown (stop, restart)'
complete -c trm -n "__fish_trm_using_subcommand stop" -l dry-run -d 'Print what would happen; change nothing'
complete -c trm -n "__fish_trm_using_subcommand stop" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm -n "__fish_trm_using_subcommand restart" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm -n "__fish_trm_using_subcommand restart" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm -n "__fish_trm_using_subcommand restart" -l force -d 'Stop without waiting for a clean shutdown (stop, restart)'
complete -c trm -n "__fish_trm_using_subcommand restart" -l dry-run -d 'Print what would happen; change nothing'
complete -c trm -n "__fish_trm_using_subcommand restart" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm -n "__fish_trm_using_subcommand delete" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm -n "__fish_trm_using_subcommand delete" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm -n "__fish_trm_using_subcommand delete" -l force -d 'Delete even if running (it is stopped first)'
complete -c trm -n "__fish_trm_using_subcommand delete" -s y -l yes -d 'Do not ask for confirmation'
complete -c trm -n "__fish_trm_using_subcommand delete" -l dry-run -d 'Print what would happen; change nothing'
complete -c trm -n "__fish_trm_using_subcommand delete" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm -n "__fish_trm_using_subcommand doctor" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm -n "__fish_trm_using_subcommand doctor" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm -n "__fish_trm_using_subcommand doctor" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm -n "__fish_trm_using_subcommand cp" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm -n "__fish_trm_using_subcommand cp" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm -n "__fish_trm_using_subcommand cp" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm -n "__fish_trm_using_subcommand policy; and not __fish_seen_subcommand_from set help" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm -n "__fish_trm_using_subcommand policy; and not __fish_seen_subcommand_from set help" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm -n "__fish_trm_using_subcommand policy; and not __fish_seen_subcommand_from set help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm -n "__fish_trm_using_subcommand policy; and not __fish_seen_subcommand_from set help" -f -a "set" -d 'Replace an agent box\'s egress policy; no other box is touched'
complete -c trm -n "__fish_trm_using_subcommand policy; and not __fish_seen_subcommand_from set help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c trm -n "__fish_trm_using_subcommand policy; and __fish_seen_subcommand_from set" -l egress -r -f -a "public\t''
none\t''
allow-list\t''"
complete -c trm -n "__fish_trm_using_subcommand policy; and __fish_seen_subcommand_from set" -l allow -d 'With --egress allow-list: CIDR[:PORT], e.g. 203.0.113.0/24:443 or [2001:db8::/32]:443' -r
complete -c trm -n "__fish_trm_using_subcommand policy; and __fish_seen_subcommand_from set" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm -n "__fish_trm_using_subcommand policy; and __fish_seen_subcommand_from set" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm -n "__fish_trm_using_subcommand policy; and __fish_seen_subcommand_from set" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm -n "__fish_trm_using_subcommand policy; and __fish_seen_subcommand_from help" -f -a "set" -d 'Replace an agent box\'s egress policy; no other box is touched'
complete -c trm -n "__fish_trm_using_subcommand policy; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c trm -n "__fish_trm_using_subcommand mcp" -l box -d 'A box the agent may use (launch, exec, files...); repeat for several' -r
complete -c trm -n "__fish_trm_using_subcommand mcp" -l launch-profile -d 'A profile `launch` may use; the first is the default' -r
complete -c trm -n "__fish_trm_using_subcommand mcp" -l allow-destructive -d 'Let the agent run this destructive verb without asking you (repeatable)' -r -f -a "rollback\t'Return a box to an earlier snapshot (its present state is kept only as the safety snapshot)'
expose\t'Publish a box\'s port on a host name (always behind sign-on)'"
complete -c trm -n "__fish_trm_using_subcommand mcp" -l idle -d 'Every box the agent launches stops after this long idle (as trm launch --idle)' -r
complete -c trm -n "__fish_trm_using_subcommand mcp" -l ttl -d 'Every box the agent launches is deleted this long after (as trm launch --ttl)' -r
complete -c trm -n "__fish_trm_using_subcommand mcp" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm -n "__fish_trm_using_subcommand mcp" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm -n "__fish_trm_using_subcommand mcp" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm -n "__fish_trm_using_subcommand help; and not __fish_seen_subcommand_from config status init image launch exec cluster list info start stop restart delete doctor cp policy mcp help" -f -a "config" -d 'This host\'s configuration as one document, to carry to a new server'
complete -c trm -n "__fish_trm_using_subcommand help; and not __fish_seen_subcommand_from config status init image launch exec cluster list info start stop restart delete doctor cp policy mcp help" -f -a "status" -d 'The whole host at a glance: LXD, Traefik, the gate, the timers, the last sync\'s problems, each box\'s newest snapshot and backup, the pool'
complete -c trm -n "__fish_trm_using_subcommand help; and not __fish_seen_subcommand_from config status init image launch exec cluster list info start stop restart delete doctor cp policy mcp help" -f -a "init" -d 'Bring this host to the Terrarium baseline (idempotent)'
complete -c trm -n "__fish_trm_using_subcommand help; and not __fish_seen_subcommand_from config status init image launch exec cluster list info start stop restart delete doctor cp policy mcp help" -f -a "image" -d 'Build and import the Debian 12 base image'
complete -c trm -n "__fish_trm_using_subcommand help; and not __fish_seen_subcommand_from config status init image launch exec cluster list info start stop restart delete doctor cp policy mcp help" -f -a "launch" -d 'Launch a container and wait for cloud-init to finish'
complete -c trm -n "__fish_trm_using_subcommand help; and not __fish_seen_subcommand_from config status init image launch exec cluster list info start stop restart delete doctor cp policy mcp help" -f -a "exec" -d 'Run a shell or a command in a container as the `terrarium` user'
complete -c trm -n "__fish_trm_using_subcommand help; and not __fish_seen_subcommand_from config status init image launch exec cluster list info start stop restart delete doctor cp policy mcp help" -f -a "cluster" -d 'More than one server: this host as a member of an LXD cluster'
complete -c trm -n "__fish_trm_using_subcommand help; and not __fish_seen_subcommand_from config status init image launch exec cluster list info start stop restart delete doctor cp policy mcp help" -f -a "list" -d 'List containers'
complete -c trm -n "__fish_trm_using_subcommand help; and not __fish_seen_subcommand_from config status init image launch exec cluster list info start stop restart delete doctor cp policy mcp help" -f -a "info" -d 'Show one container'
complete -c trm -n "__fish_trm_using_subcommand help; and not __fish_seen_subcommand_from config status init image launch exec cluster list info start stop restart delete doctor cp policy mcp help" -f -a "start" -d 'Start a container'
complete -c trm -n "__fish_trm_using_subcommand help; and not __fish_seen_subcommand_from config status init image launch exec cluster list info start stop restart delete doctor cp policy mcp help" -f -a "stop" -d 'Stop a container'
complete -c trm -n "__fish_trm_using_subcommand help; and not __fish_seen_subcommand_from config status init image launch exec cluster list info start stop restart delete doctor cp policy mcp help" -f -a "restart" -d 'Restart a running container'
complete -c trm -n "__fish_trm_using_subcommand help; and not __fish_seen_subcommand_from config status init image launch exec cluster list info start stop restart delete doctor cp policy mcp help" -f -a "delete" -d 'Delete a container and its snapshots (asks first)'
complete -c trm -n "__fish_trm_using_subcommand help; and not __fish_seen_subcommand_from config status init image launch exec cluster list info start stop restart delete doctor cp policy mcp help" -f -a "doctor" -d 'Check what a nested-Docker box needs; print each finding with a fix'
complete -c trm -n "__fish_trm_using_subcommand help; and not __fish_seen_subcommand_from config status init image launch exec cluster list info start stop restart delete doctor cp policy mcp help" -f -a "cp" -d 'Copy one file between the host and a box\'s home, as the terrarium user'
complete -c trm -n "__fish_trm_using_subcommand help; and not __fish_seen_subcommand_from config status init image launch exec cluster list info start stop restart delete doctor cp policy mcp help" -f -a "policy" -d 'An agent box\'s egress policy (what it may reach besides its DNS)'
complete -c trm -n "__fish_trm_using_subcommand help; and not __fish_seen_subcommand_from config status init image launch exec cluster list info start stop restart delete doctor cp policy mcp help" -f -a "mcp" -d 'Serve an agent over MCP (stdio), limited to the boxes named here'
complete -c trm -n "__fish_trm_using_subcommand help; and not __fish_seen_subcommand_from config status init image launch exec cluster list info start stop restart delete doctor cp policy mcp help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c trm -n "__fish_trm_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "export" -d 'Print (or write) settings, profiles, labels, snapshot opt-outs and the gate\'s and bucket\'s settings; never a secret'
complete -c trm -n "__fish_trm_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "import" -d 'Plan what a document changes here, then apply it (asks first); says which secrets are still needed'
complete -c trm -n "__fish_trm_using_subcommand help; and __fish_seen_subcommand_from image" -f -a "build" -d 'Build the base image with debootstrap and import it (cached)'
complete -c trm -n "__fish_trm_using_subcommand help; and __fish_seen_subcommand_from image" -f -a "create" -d 'Publish a configured box as a golden image, from a wiped temporary copy'
complete -c trm -n "__fish_trm_using_subcommand help; and __fish_seen_subcommand_from image" -f -a "list" -d 'List the images boxes launch from: base, golden (with their source) and others'
complete -c trm -n "__fish_trm_using_subcommand help; and __fish_seen_subcommand_from image" -f -a "delete" -d 'Delete an image (asks first); boxes launched from it keep running'
complete -c trm -n "__fish_trm_using_subcommand help; and __fish_seen_subcommand_from cluster" -f -a "init" -d 'Make this host the first member of a new cluster'
complete -c trm -n "__fish_trm_using_subcommand help; and __fish_seen_subcommand_from cluster" -f -a "add" -d 'Print a join token for a new member NAME (again, if one is unused)'
complete -c trm -n "__fish_trm_using_subcommand help; and __fish_seen_subcommand_from cluster" -f -a "join" -d 'Join this host to a cluster, with a token from `trm cluster add`'
complete -c trm -n "__fish_trm_using_subcommand help; and __fish_seen_subcommand_from cluster" -f -a "evacuate" -d 'Move a member\'s instances to the other members (asks first)'
complete -c trm -n "__fish_trm_using_subcommand help; and __fish_seen_subcommand_from cluster" -f -a "restore" -d 'Bring a member\'s evacuated instances back'
complete -c trm -n "__fish_trm_using_subcommand help; and __fish_seen_subcommand_from cluster" -f -a "remove" -d 'Remove a member that holds no instances (asks first)'
complete -c trm -n "__fish_trm_using_subcommand help; and __fish_seen_subcommand_from cluster" -f -a "list" -d 'List the members: address, status, roles, instances'
complete -c trm -n "__fish_trm_using_subcommand help; and __fish_seen_subcommand_from cluster" -f -a "mesh" -d 'Bring this member\'s part of the private mesh in line (idempotent)'
complete -c trm -n "__fish_trm_using_subcommand help; and __fish_seen_subcommand_from policy" -f -a "set" -d 'Replace an agent box\'s egress policy; no other box is touched'
