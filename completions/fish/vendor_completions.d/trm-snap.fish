# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_trm_snap_global_optspecs
    string join \n format= project= wait h/help V/version
end

function __fish_trm_snap_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_trm_snap_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_trm_snap_using_subcommand
    set -l cmd (__fish_trm_snap_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c trm-snap -n "__fish_trm_snap_needs_command" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-snap -n "__fish_trm_snap_needs_command" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-snap -n "__fish_trm_snap_needs_command" -l wait -d 'Wait for another Terrarium process working on the same instance instead of failing with exit 75'
complete -c trm-snap -n "__fish_trm_snap_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-snap -n "__fish_trm_snap_needs_command" -s V -l version -d 'Print version'
complete -c trm-snap -n "__fish_trm_snap_needs_command" -f -a "create" -d 'Take a manual snapshot (never pruned automatically)'
complete -c trm-snap -n "__fish_trm_snap_needs_command" -f -a "list" -d 'List snapshots: instance, name, kind, created (UTC), size, held'
complete -c trm-snap -n "__fish_trm_snap_needs_command" -f -a "rollback" -d 'Step an instance back to a snapshot (default: its newest); undoable'
complete -c trm-snap -n "__fish_trm_snap_needs_command" -f -a "restore" -d 'Create a new, stopped instance from a snapshot, without the original\'s exposure or MAC'
complete -c trm-snap -n "__fish_trm_snap_needs_command" -f -a "auto" -d 'One tick of the time machine: idle stops and deadlines, the due snapshot for every instance, retention, then the due off-site exports'
complete -c trm-snap -n "__fish_trm_snap_needs_command" -f -a "prune" -d 'Apply retention now; with --dry-run, print every decision and its rule'
complete -c trm-snap -n "__fish_trm_snap_needs_command" -f -a "hold" -d 'Hold a snapshot: it is never pruned (root only; recorded on the host, at most 16 per instance)'
complete -c trm-snap -n "__fish_trm_snap_needs_command" -f -a "release" -d 'Release a held snapshot (root only)'
complete -c trm-snap -n "__fish_trm_snap_needs_command" -f -a "export" -d 'Back an instance up to S3: LXD export -> zstd -> age -> multipart upload -> manifest'
complete -c trm-snap -n "__fish_trm_snap_needs_command" -f -a "import" -d 'Restore an off-site backup (signed by this host\'s key) as a new, stopped instance without the original\'s exposure'
complete -c trm-snap -n "__fish_trm_snap_needs_command" -f -a "verify" -d 'Restore drill: import a backup into a throwaway instance, check it, delete it (a ZFS chain: every link checked)'
complete -c trm-snap -n "__fish_trm_snap_needs_command" -f -a "s3" -d 'Off-site settings, listing and retention'
complete -c trm-snap -n "__fish_trm_snap_needs_command" -f -a "schedule" -d 'Install, remove or report the systemd timer for `trm-snap auto`'
complete -c trm-snap -n "__fish_trm_snap_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand create" -l label -d 'A word to remember it by, appended to the name' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand create" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-snap -n "__fish_trm_snap_using_subcommand create" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand create" -l all -d 'Every instance'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand create" -l wait -d 'Wait for another Terrarium process working on the same instance instead of failing with exit 75'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand create" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand list" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-snap -n "__fish_trm_snap_using_subcommand list" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand list" -l wait -d 'Wait for another Terrarium process working on the same instance instead of failing with exit 75'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand rollback" -l to -d 'The snapshot to return to; `last-checkpoint` for the one `trm exec --checkpoint` took last [default: the newest]' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand rollback" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-snap -n "__fish_trm_snap_using_subcommand rollback" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand rollback" -l swap -d 'Restore through a copy and keep the current instance, stopped, under another name'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand rollback" -s y -l yes -d 'Do not ask for confirmation'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand rollback" -l dry-run -d 'List exactly what would happen; change nothing'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand rollback" -l wait -d 'Wait for another Terrarium process working on the same instance instead of failing with exit 75'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand rollback" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand restore" -l as -d 'Name of the new instance' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand restore" -l from -d 'The snapshot [default: the newest]' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand restore" -l target -d 'On a cluster, the member to restore onto [default: LXD\'s choice]' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand restore" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-snap -n "__fish_trm_snap_using_subcommand restore" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand restore" -l start -d 'Start the new instance'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand restore" -l wait -d 'Wait for another Terrarium process working on the same instance instead of failing with exit 75'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand restore" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand auto" -l now -d 'Evaluate as of this time (RFC 3339) instead of now' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand auto" -l every -d 'Tick now and then every MINUTES, on the clock, until stopped: the timer for hosts without systemd (one event line per instance a tick)' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand auto" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-snap -n "__fish_trm_snap_using_subcommand auto" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand auto" -l wait -d 'Wait for another Terrarium process working on the same instance instead of failing with exit 75'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand auto" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand prune" -l now -d 'Evaluate the policy as of this time (RFC 3339), for what-ifs' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand prune" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-snap -n "__fish_trm_snap_using_subcommand prune" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand prune" -l dry-run -d 'Print every snapshot with keep or delete and why; change nothing'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand prune" -s y -l yes -d 'Do not ask for confirmation'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand prune" -l wait -d 'Wait for another Terrarium process working on the same instance instead of failing with exit 75'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand prune" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand hold" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-snap -n "__fish_trm_snap_using_subcommand hold" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand hold" -l wait -d 'Wait for another Terrarium process working on the same instance instead of failing with exit 75'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand hold" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand release" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-snap -n "__fish_trm_snap_using_subcommand release" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand release" -l wait -d 'Wait for another Terrarium process working on the same instance instead of failing with exit 75'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand release" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand export" -l snapshot -d 'Export this snapshot [default: a fresh one, removed afterwards]' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand export" -l part-size -d 'Part size in MiB (5-5120) [default: from s3.toml, 8]; memory is about (parallel + 1) x this' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand export" -l parallel -d 'Parts uploaded at once (1-16) [default: from s3.toml, 2]' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand export" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-snap -n "__fish_trm_snap_using_subcommand export" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand export" -l all -d 'Every instance of the project, one after the other'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand export" -l optimized -d 'LXD\'s storage-driver-native stream (restores only onto the same driver)'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand export" -l wait -d 'Wait for another Terrarium process working on the same instance instead of failing with exit 75'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand export" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand import" -l as -d 'Name of the new instance' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand import" -l to-dataset -d 'Receive a ZFS stream chain (`[offsite] zfs_full_every`) into this new dataset instead: every link is checked first' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand import" -l at -d 'Backup id, RFC 3339 time or date: the newest backup made at or before it [default: newest]' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand import" -l identity -d 'The age identity file (AGE-SECRET-KEY-...) [default: the generated one, if any]' -r -F
complete -c trm-snap -n "__fish_trm_snap_using_subcommand import" -l target -d 'On a cluster, the member to restore onto [default: LXD\'s choice]' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand import" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-snap -n "__fish_trm_snap_using_subcommand import" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand import" -l wait -d 'Wait for another Terrarium process working on the same instance instead of failing with exit 75'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand import" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand verify" -l at -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand verify" -l identity -r -F
complete -c trm-snap -n "__fish_trm_snap_using_subcommand verify" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-snap -n "__fish_trm_snap_using_subcommand verify" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand verify" -l all -d 'Drill the newest backup of every instance in the bucket; recorded for `trm status`'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand verify" -l wait -d 'Wait for another Terrarium process working on the same instance instead of failing with exit 75'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand verify" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and not __fish_seen_subcommand_from set show list prune help" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and not __fish_seen_subcommand_from set show list prune help" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and not __fish_seen_subcommand_from set show list prune help" -l wait -d 'Wait for another Terrarium process working on the same instance instead of failing with exit 75'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and not __fish_seen_subcommand_from set show list prune help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and not __fish_seen_subcommand_from set show list prune help" -f -a "set" -d 'Configure the bucket and the encryption key; a real write and delete checks it before saving'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and not __fish_seen_subcommand_from set show list prune help" -f -a "show" -d 'Show the settings (the secret key is never shown)'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and not __fish_seen_subcommand_from set show list prune help" -f -a "list" -d 'List complete backups (signed by this host\'s key) from their manifests'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and not __fish_seen_subcommand_from set show list prune help" -f -a "prune" -d 'Delete exports beyond the retention policy (never the newest complete one)'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and not __fish_seen_subcommand_from set show list prune help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from set" -l endpoint -d 'S3 endpoint URL, e.g. https://s3.eu-central-1.amazonaws.com' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from set" -l bucket -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from set" -l region -d '[default: us-east-1]' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from set" -l prefix -d 'Key prefix for every object [default: terrarium]' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from set" -l access-key -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from set" -l secret-key-file -d 'File holding the secret key (never pass secrets on the command line)' -r -F
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from set" -l recipient -d 'The age public key (age1...) backups are encrypted to' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from set" -l identity-file -d 'Where --generate-key writes the identity [default: /etc/terrarium/s3-identity.txt]; without --generate-key: an identity you already have (its public key becomes the recipient)' -r -F
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from set" -l signing-key-file -d 'The key every manifest is signed with; import trusts only what it signed. With --generate-key: where to write it [default: /etc/terrarium/s3-signing-key.txt]; without: a key you saved (a new server after a loss). Generated there when none is set' -r -F
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from set" -l part-size -d 'Default part size in MiB (5-5120)' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from set" -l parallel -d 'Default parts in flight (1-16)' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from set" -l compression-level -d 'zstd level, 1 (fastest) to 19 [default: 3]' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from set" -l memory-mib -d 'Memory an export may use: upload buffers, then zstd\'s workers (32-65536) [default: 64]' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from set" -l keep-daily -d 'Exports kept by `s3 prune`: newest of each of the last N days' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from set" -l keep-weekly -d '... of each of the last N ISO weeks' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from set" -l keep-monthly -d '... of each of the last N months' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from set" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from set" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from set" -l secret-key-stdin -d 'Read the secret key from stdin'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from set" -l generate-key -d 'Generate a key pair; the identity is written 0600 (copy it off this server!)'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from set" -l wait -d 'Wait for another Terrarium process working on the same instance instead of failing with exit 75'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from set" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from show" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from show" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from show" -l wait -d 'Wait for another Terrarium process working on the same instance instead of failing with exit 75'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from list" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from list" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from list" -l all -d 'Also show incomplete uploads (no manifest) and refused ones (unsigned, forged, misplaced)'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from list" -l wait -d 'Wait for another Terrarium process working on the same instance instead of failing with exit 75'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from prune" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from prune" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from prune" -l dry-run -d 'Print every export with keep or delete and why; change nothing'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from prune" -s y -l yes -d 'Do not ask for confirmation'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from prune" -l wait -d 'Wait for another Terrarium process working on the same instance instead of failing with exit 75'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from prune" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from help" -f -a "set" -d 'Configure the bucket and the encryption key; a real write and delete checks it before saving'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show the settings (the secret key is never shown)'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from help" -f -a "list" -d 'List complete backups (signed by this host\'s key) from their manifests'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from help" -f -a "prune" -d 'Delete exports beyond the retention policy (never the newest complete one)'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand s3; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand schedule" -l unit-dir -d 'Where unit files go' -r -F
complete -c trm-snap -n "__fish_trm_snap_using_subcommand schedule" -l every -d 'Minutes between ticks' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand schedule" -l format -d 'Output format [default: human on a terminal, json otherwise]' -r -f -a "json\t'One JSON document'
jsonl\t'One JSON object per line (progress and items as they come)'
human\t'A table or readable text for people'"
complete -c trm-snap -n "__fish_trm_snap_using_subcommand schedule" -l project -d 'LXD project to work in [default: the project `trm init` set up]' -r
complete -c trm-snap -n "__fish_trm_snap_using_subcommand schedule" -l dry-run -d 'Print what would be done; change nothing'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand schedule" -l wait -d 'Wait for another Terrarium process working on the same instance instead of failing with exit 75'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand schedule" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand help; and not __fish_seen_subcommand_from create list rollback restore auto prune hold release export import verify s3 schedule help" -f -a "create" -d 'Take a manual snapshot (never pruned automatically)'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand help; and not __fish_seen_subcommand_from create list rollback restore auto prune hold release export import verify s3 schedule help" -f -a "list" -d 'List snapshots: instance, name, kind, created (UTC), size, held'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand help; and not __fish_seen_subcommand_from create list rollback restore auto prune hold release export import verify s3 schedule help" -f -a "rollback" -d 'Step an instance back to a snapshot (default: its newest); undoable'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand help; and not __fish_seen_subcommand_from create list rollback restore auto prune hold release export import verify s3 schedule help" -f -a "restore" -d 'Create a new, stopped instance from a snapshot, without the original\'s exposure or MAC'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand help; and not __fish_seen_subcommand_from create list rollback restore auto prune hold release export import verify s3 schedule help" -f -a "auto" -d 'One tick of the time machine: idle stops and deadlines, the due snapshot for every instance, retention, then the due off-site exports'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand help; and not __fish_seen_subcommand_from create list rollback restore auto prune hold release export import verify s3 schedule help" -f -a "prune" -d 'Apply retention now; with --dry-run, print every decision and its rule'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand help; and not __fish_seen_subcommand_from create list rollback restore auto prune hold release export import verify s3 schedule help" -f -a "hold" -d 'Hold a snapshot: it is never pruned (root only; recorded on the host, at most 16 per instance)'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand help; and not __fish_seen_subcommand_from create list rollback restore auto prune hold release export import verify s3 schedule help" -f -a "release" -d 'Release a held snapshot (root only)'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand help; and not __fish_seen_subcommand_from create list rollback restore auto prune hold release export import verify s3 schedule help" -f -a "export" -d 'Back an instance up to S3: LXD export -> zstd -> age -> multipart upload -> manifest'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand help; and not __fish_seen_subcommand_from create list rollback restore auto prune hold release export import verify s3 schedule help" -f -a "import" -d 'Restore an off-site backup (signed by this host\'s key) as a new, stopped instance without the original\'s exposure'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand help; and not __fish_seen_subcommand_from create list rollback restore auto prune hold release export import verify s3 schedule help" -f -a "verify" -d 'Restore drill: import a backup into a throwaway instance, check it, delete it (a ZFS chain: every link checked)'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand help; and not __fish_seen_subcommand_from create list rollback restore auto prune hold release export import verify s3 schedule help" -f -a "s3" -d 'Off-site settings, listing and retention'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand help; and not __fish_seen_subcommand_from create list rollback restore auto prune hold release export import verify s3 schedule help" -f -a "schedule" -d 'Install, remove or report the systemd timer for `trm-snap auto`'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand help; and not __fish_seen_subcommand_from create list rollback restore auto prune hold release export import verify s3 schedule help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand help; and __fish_seen_subcommand_from s3" -f -a "set" -d 'Configure the bucket and the encryption key; a real write and delete checks it before saving'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand help; and __fish_seen_subcommand_from s3" -f -a "show" -d 'Show the settings (the secret key is never shown)'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand help; and __fish_seen_subcommand_from s3" -f -a "list" -d 'List complete backups (signed by this host\'s key) from their manifests'
complete -c trm-snap -n "__fish_trm_snap_using_subcommand help; and __fish_seen_subcommand_from s3" -f -a "prune" -d 'Delete exports beyond the retention policy (never the newest complete one)'
