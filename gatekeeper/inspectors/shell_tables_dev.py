"""Option tables of the development tools the default pack allows: git, make, downloaders,
package managers, test and build tools. See ``shell_options`` for what each effect means.

Subcommand-rich tools list their common subcommands; an unknown subcommand or option is doubt.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from gatekeeper.inspectors.shell_options import Effect, Opt, Table, data, opts, table

__all__ = ["DEV", "MAKE_VARIABLES"]

S, R, W, X, C, P, D, H, RM = (
    Effect.SAFE,
    Effect.READ,
    Effect.WRITE,
    Effect.EXEC,
    Effect.CONNECT,
    Effect.PROXY,
    Effect.DOUBT,
    Effect.HANDLED,
    Effect.REMOTE,
)
HELP = opts("--help -h --version -V", S, "prints and exits")
QUIET = opts("-q --quiet -v --verbose", S, "how much is printed")

# -- git -------------------------------------------------------------------------------
_DIFF = opts(
    "-p -u -s --patch --no-patch -U= --unified= --raw --patch-with-raw -t --stat? --numstat --shortstat "
    "--dirstat? --cumulative --summary --patch-with-stat -z --name-only --name-status --submodule? --color? "
    "--color-moved? --color-words? --word-diff? --word-diff-regex= --no-renames --rename-empty --check "
    "--ws-error-highlight= --full-index --binary --abbrev? -B? -M? -C? --find-renames? --find-copies? "
    "--find-copies-harder -D --irreversible-delete -l= --diff-filter= -S= -G= --find-object= --pickaxe-all "
    "--pickaxe-regex --skip-to= --rotate-to= -R --relative? -a --text --ignore-cr-at-eol "
    "--ignore-space-at-eol -b --ignore-space-change -w --ignore-all-space --ignore-blank-lines -I= "
    "--ignore-matching-lines= --inter-hunk-context= -W --function-context --exit-code --quiet "
    "--no-ext-diff --no-textconv --ignore-submodules? --src-prefix= --dst-prefix= --no-prefix "
    "--default-prefix --line-prefix= --minimal --patience --histogram --anchored= --diff-algorithm= "
    "--indent-heuristic --stat-width= --stat-name-width= --stat-count= --compact-summary --cached "
    "--staged --merge-base --no-index --color-moved-ws= --follow --cc -c -m --dd --remerge-diff",
    S,
    "what the diff shows",
)
_DIFF_RISK = {
    **opts("--output=", W, "the diff is written to this file"),
    **opts("-O= --orderfile=", R, "the order is read from a file"),
    **opts("--ext-diff --textconv", D, "runs the diff or textconv programs set in configuration"),
}
_LOG = opts(
    "-n= --max-count= --skip= --since= --after= --until= --before= --author= --committer= --grep= "
    "--all-match --invert-grep -i --regexp-ignore-case --basic-regexp -E --extended-regexp -F "
    "--fixed-strings -P --perl-regexp --merges --no-merges --min-parents= --max-parents= --first-parent "
    "--not --all --branches? --tags? --remotes? --glob= --exclude= --reflog --single-worktree "
    "--cherry-mark --cherry-pick --left-only --right-only --cherry -g --walk-reflogs --merge --boundary "
    "--simplify-by-decoration --full-history --dense --sparse --simplify-merges --ancestry-path? "
    "--date-order --author-date-order --topo-order --reverse --no-walk? --do-walk --pretty? --format= "
    "--abbrev-commit --no-abbrev-commit --oneline --encoding= --expand-tabs? --notes? --show-notes? "
    "--show-signature --relative-date --date= --parents --children --left-right --graph --decorate? "
    "--decorate-refs= --decorate-refs-exclude= --source --clear-decorations --mailmap --use-mailmap "
    "--full-diff --log-size -L= --since-as-filter= --stdin",
    S,
    "which commits are shown",
)


def _git(*groups: Mapping[str, Opt], **kw: object) -> Table:
    return table(opts("-h --help", S, "prints and exits"), *groups, numeric=True, **kw)


_REMOTE_OPS = opts(
    "-4 -6 --ipv4 --ipv6 --progress --no-progress --dry-run -n --all --prune -p --prune-tags -t --tags "
    "--force -f --atomic --set-upstream -u --depth= --shallow-since= --shallow-exclude= --unshallow "
    "--deepen= --update-shallow --recurse-submodules? --jobs= -j= --multiple --append -a --keep -k "
    "--porcelain --verbose -v --quiet -q --follow-tags --no-verify --verify --signed? --push-option= "
    "-o= --force-with-lease? --force-if-includes --mirror --delete -d --rebase? -r --ff --ff-only "
    "--no-ff --squash --commit --edit -e --autostash --stat --log? --no-commit --refetch --write-fetch-head "
    "--refmap= --filter= --negotiation-tip= --negotiate-only --show-forced-updates --set-upstream-to= "
    "--allow-unrelated-histories --strategy= -s= --strategy-option= -X= --update-head-ok --prefetch "
    "--no-show-forced-updates --auto-gc --auto-maintenance --server-option= --signoff --gpg-sign? -S?",
    S,
    "what is fetched or pushed",
)
_PACK_PROGRAMS = opts(
    "--upload-pack= --receive-pack= --exec=", H, "git runs this program: read by the git handler"
)
_REMOTE_TABLE = _git(_REMOTE_OPS, _PACK_PROGRAMS, remote_operand=0)
GIT_SUBCOMMANDS: Final[Mapping[str, Table]] = MappingProxyType(
    {
        "status": _git(
            opts(
                "-s --short -b --branch --show-stash --porcelain? --long -v --verbose -u? --untracked-files? "
                "--ignored? --ignore-submodules? -z --column? --ahead-behind --renames --find-renames? "
                "--no-column --no-ahead-behind",
                S,
                "what status shows",
            )
        ),
        "diff": _git(_DIFF, _DIFF_RISK),
        "log": _git(_DIFF, _DIFF_RISK, _LOG),
        "show": _git(_DIFF, _DIFF_RISK, _LOG),
        "shortlog": _git(
            _LOG, opts("-s --summary -n --numbered -e --email -c --committer -w? --group=", S, "the summary")
        ),
        "blame": _git(
            opts(
                "-b -l -t -s -e -f -n -p -c -w -M? -C? -L= -S= --root --show-stats --porcelain "
                "--line-porcelain "
                "--incremental --encoding= --contents= --date= --progress --show-name --show-number "
                "--show-email --abbrev= --ignore-rev= --ignore-revs-file= --color-lines --color-by-age "
                "--reverse",
                S,
                "what blame shows",
            )
        ),
        "add": _git(
            opts(
                "-n --dry-run -v --verbose -f --force -i --interactive -p --patch -e --edit -u --update "
                "-A --all "
                "--no-all --ignore-removal --no-ignore-removal -N --intent-to-add --refresh --ignore-errors "
                "--ignore-missing --sparse --renormalize --chmod= --pathspec-from-file= --pathspec-file-nul",
                S,
                "what is staged",
            )
        ),
        "commit": _git(
            opts(
                "-a --all -p --patch -m= --message= -C= -c= --reuse-message= --reedit-message= --fixup= "
                "--squash= "
                "--amend --no-edit -e --edit --allow-empty --allow-empty-message -s --signoff --no-verify -n "
                "--verify --author= --date= -q --quiet -v --verbose --dry-run --short --porcelain --long -z "
                "--cleanup= -u? --untracked-files? -i --include -o --only --pathspec-from-file= "
                "--pathspec-file-nul -S? --gpg-sign? --trailer= --reset-author --status --no-status",
                S,
                "what is committed (hooks in .git run; writes there are held)",
            ),
            opts("-F= --file= -t= --template=", R, "the message is read from a file"),
        ),
        "checkout": _git(
            opts(
                "-b= -B= --orphan= -f --force -m --merge --ours --theirs -p --patch -q --quiet --detach -t "
                "--track? --no-track --guess --overlay --progress --conflict= --ignore-skip-worktree-bits "
                "--ignore-other-worktrees --recurse-submodules? --pathspec-from-file= --pathspec-file-nul -l",
                S,
                "which tree is checked out",
            )
        ),
        "switch": _git(
            opts(
                "-c= --create= -C= --force-create= --orphan= -d --detach --guess -f --force "
                "--discard-changes "
                "-m --merge -q --quiet --progress -t --track? --conflict= --recurse-submodules? "
                "--ignore-other-worktrees",
                S,
                "which branch is checked out",
            )
        ),
        "restore": _git(
            opts(
                "-s= --source= -p --patch -W --worktree -S --staged -q --quiet --progress --ours --theirs -m "
                "--merge --conflict= --ignore-unmerged --ignore-skip-worktree-bits --recurse-submodules? "
                "--overlay --pathspec-from-file= --pathspec-file-nul",
                S,
                "what is restored",
            )
        ),
        "reset": _git(
            opts(
                "--soft --mixed --hard --merge --keep -q --quiet -p --patch -N --intent-to-add "
                "--recurse-submodules? --pathspec-from-file= --pathspec-file-nul --refresh",
                S,
                "what is reset",
            )
        ),
        "branch": _git(
            opts(
                "-a --all -r --remotes -l --list -v -vv --verbose -q --quiet -d -D --delete -m -M --move "
                "-c -C "
                "--copy -f --force --color? --no-color --column? --sort= --merged? --no-merged? --contains? "
                "--no-contains? --points-at= --format= --show-current -u= --set-upstream-to= "
                "--unset-upstream "
                "--edit-description -t --track? --no-track --abbrev= --omit-empty -i --ignore-case "
                "--create-reflog",
                S,
                "which branches are listed or changed",
            )
        ),
        "tag": _git(
            opts(
                "-a --annotate -s --sign -u= --local-user= -f --force -d --delete -v --verify -n? -l --list "
                "--sort= --contains? --no-contains? --merged? --no-merged? --points-at= -m= --message= "
                "--cleanup= --create-reflog --column? --format= --color? -i --ignore-case -e --edit",
                S,
                "which tags are listed or made",
            ),
            opts("-F= --file=", R, "the message is read from a file"),
        ),
        "stash": _git(
            opts(
                "push pop apply list show drop clear branch create store save -p --patch -k --keep-index "
                "--no-keep-index -u --include-untracked -a --all -q --quiet -m= --message= --index -S "
                "--staged "
                "--pathspec-from-file= --pathspec-file-nul",
                S,
                "what is stashed",
            )
        ),
        "fetch": _REMOTE_TABLE,
        "pull": _REMOTE_TABLE,
        "push": _REMOTE_TABLE,
        "ls-remote": _git(
            opts(
                "--heads --tags --refs -q --quiet --exit-code --get-url --symref --sort= -b --branches -t "
                "-h -o=",
                S,
                "what is listed",
            ),
            _PACK_PROGRAMS,
            remote_operand=0,
        ),
        "clone": _git(
            _REMOTE_OPS,
            _PACK_PROGRAMS,
            opts(
                "-l --local --no-hardlinks -s --shared --bare --sparse --no-checkout --single-branch "
                "--no-single-branch --no-tags -b= --branch= --origin= -n --also-filter-submodules "
                "--shallow-submodules --no-shallow-submodules --remote-submodules --no-remote-submodules "
                "--bundle-uri= --reject-shallow --revision=",
                S,
                "what is cloned",
            ),
            opts("-c= --config=", H, "sets configuration in the new repository: read by the git handler"),
            opts("-u=", H, "clone -u is --upload-pack: git runs this program, read by the git handler"),
            opts("--template=", X, "a template directory brings hooks that run in the new repository"),
            opts(
                "--reference= --reference-if-able= --dissociate --separate-git-dir=",
                D,
                "objects or the git directory live elsewhere",
            ),
            remote_operand=0,
        ),
        "init": _git(
            opts(
                "-q --quiet --bare -b= --initial-branch= --object-format= --ref-format= --shared?",
                S,
                "how the repository is made",
            ),
            opts("--template=", X, "a template directory brings hooks that run in the new repository"),
            opts("--separate-git-dir=", D, "the git directory lives elsewhere"),
        ),
        "remote": _git(
            opts(
                "-v --verbose -f -t= -m= --tags --no-tags --mirror? --push --add --delete --all --auto "
                "--dry-run -n",
                S,
                "remotes listed or changed",
            ),
            remote_operand=2,  # remote add NAME URL, remote set-url NAME URL
        ),
        "rev-parse": _git(
            opts(
                "--show-toplevel --show-prefix --show-cdup --git-dir --git-common-dir --absolute-git-dir "
                "--is-inside-work-tree --is-inside-git-dir --is-bare-repository --is-shallow-repository "
                "--abbrev-ref? --short? --verify -q --quiet --symbolic --symbolic-full-name --all "
                "--branches? "
                "--tags? --remotes? --glob= --since= --until= --default= --sq --sq-quote --not "
                "--show-object-format? "
                "--local-env-vars --path-format= --git-path= --show-superproject-working-tree "
                "--disambiguate= "
                "--parseopt --stop-at-non-option --keep-dashdash --revs-only --no-revs --flags --no-flags",
                S,
                "what is printed",
            )
        ),
        "rev-list": _git(
            _LOG,
            opts(
                "--count --objects --objects-edge --in-commit-order --no-object-names --quiet",
                S,
                "what is listed",
            ),
        ),
        "ls-files": _git(
            opts(
                "-c --cached -d --deleted -m --modified -o --others -i --ignored -s --stage -u --unmerged -k "
                "--killed -z -x= --exclude= --exclude-standard --error-unmatch --with-tree= -t -v -f "
                "--full-name "
                "--recurse-submodules --abbrev? --debug --eol --deduplicate --directory --no-empty-directory "
                "--sparse --format=",
                S,
                "which files are listed",
            ),
            opts("-X= --exclude-from= --exclude-per-directory=", R, "patterns read from a file"),
        ),
        "ls-tree": _git(
            opts(
                "-d -r -t -l --long -z --name-only --name-status --object-only --full-name --full-tree "
                "--abbrev? --format=",
                S,
                "what is listed",
            )
        ),
        "grep": _git(
            opts(
                "--cached --no-index --untracked --no-exclude-standard --exclude-standard "
                "--recurse-submodules "
                "-a --text --textconv -i --ignore-case -I --max-depth= -r --recursive -w --word-regexp -v "
                "--invert-match -h -H --full-name -E --extended-regexp -G --basic-regexp -P --perl-regexp -F "
                "--fixed-strings -n --line-number --column -l --files-with-matches --name-only -L "
                "--files-without-match -z --null -o --only-matching -c --count --color? --break --heading -p "
                "--show-function -A= -B= -C= --after-context= --before-context= --context= -W "
                "--function-context "
                "--threads= -e= --and --or --not --all-match -q --quiet -m= --max-count=",
                S,
                "what is searched",
            ),
            opts("-f=", R, "patterns read from a file"),
            opts("-O? --open-files-in-pager?", X, "runs a pager program on the matching files"),
        ),
        "merge": _git(
            _REMOTE_OPS,
            opts(
                "--abort --continue --quit -m= --no-edit --into-name= --no-stat -n --summary "
                "--overwrite-ignore",
                S,
                "what is merged",
            ),
            opts("-F= --file=", R, "the message is read from a file"),
        ),
        "rebase": _git(
            opts(
                "-i --interactive --continue --skip --abort --quit --edit-todo --show-current-patch --onto= "
                "--keep-base --root --autosquash --no-autosquash --autostash --no-autostash -m --merge -s= "
                "--strategy= -X= --strategy-option= -q --quiet -v --verbose --stat -n --no-stat -f "
                "--force-rebase --fork-point --ignore-whitespace --whitespace= "
                "--committer-date-is-author-date "
                "--ignore-date --reset-author-date --signoff -r --rebase-merges? --update-refs --apply "
                "--empty= --keep-empty --reschedule-failed-exec --no-verify --verify --gpg-sign? -S? -C=",
                S,
                "what is rebased",
            ),
            opts("-x= --exec=", H, "runs a command after each commit: read by the git handler"),
        ),
        "cherry-pick": _git(
            opts(
                "--continue --skip --quit --abort -e --edit -x -r -m= --mainline= -n --no-commit -s "
                "--signoff --ff --allow-empty --allow-empty-message --keep-redundant-commits --empty= "
                "--strategy= -X= --strategy-option= --rerere-autoupdate -S? --gpg-sign?",
                S,
                "what is picked",
            )
        ),
        "revert": _git(
            opts(
                "--continue --skip --quit --abort -e --edit -m= --mainline= -n --no-commit -s --signoff "
                "--strategy= -X= --strategy-option= --rerere-autoupdate --reference -S? --gpg-sign?",
                S,
                "what is reverted",
            )
        ),
        "describe": _git(
            opts(
                "--all --tags --contains --abbrev= --candidates= --exact-match --debug --long --match= "
                "--exclude= --always --first-parent --dirty? --broken?",
                S,
                "what is described",
            )
        ),
        "apply": _git(
            opts(
                "--stat --numstat --summary --check --index --cached --intent-to-add -3 --3way --ours "
                "--theirs --union -R --reverse --reject -z -p= -C= --unidiff-zero --apply --no-add "
                "--allow-binary-additions --binary --exclude= --include= --ignore-space-change "
                "--ignore-whitespace --whitespace= --inaccurate-eof -v --verbose -q --quiet --recount",
                S,
                "how the patch is applied",
            ),
            opts("--directory= --unsafe-paths", D, "the patch may write outside the work tree"),
        ),
        "format-patch": _git(
            _DIFF,
            _LOG,
            opts(
                "--stdout --cover-letter --numbered -N --no-numbered --start-number= --numbered-files -k "
                "--keep-subject -s --signoff --subject-prefix= --rfc? -v= --reroll-count= --to= --cc= "
                "--from? --in-reply-to= --attach? --inline? --thread? --no-thread --base= --progress "
                "--zero-commit --interdiff= --range-diff= --creation-factor= --suffix= --add-header= "
                "--encode-email-headers",
                S,
                "how patches are made",
            ),
            opts("-o= --output-directory=", W, "patches are written there"),
        ),
        "am": _git(
            opts(
                "-s --signoff -k --keep -3 --3way -q --quiet --continue --skip --abort --quit --resolved "
                "-r --show-current-patch? --committer-date-is-author-date --ignore-date -i --interactive "
                "--keep-cr --scissors --whitespace= -C= -p= --directory= --exclude= --include= --reject "
                "--patch-format= --empty=",
                S,
                "how patches are applied",
            )
        ),
        "mv": _git(
            opts("-f --force -k -n --dry-run -v --verbose", S, "how files move (each operand is a write)")
        ),
        "rm": _git(
            opts(
                "-f --force -n --dry-run -r --cached --ignore-unmatch --sparse -q --quiet "
                "--pathspec-from-file= --pathspec-file-nul",
                S,
                "how files are removed",
            )
        ),
        "clean": _git(
            opts(
                "-d -f --force -i --interactive -n --dry-run -q --quiet -e= --exclude= -x -X",
                S,
                "what is removed from the work tree",
            )
        ),
        "worktree": _git(
            opts(
                "add list lock move prune remove repair unlock -f --force --detach --checkout "
                "--no-checkout --lock --reason= -q --quiet --track --guess-remote --orphan -b= -B= "
                "--porcelain -z --expire= -n --dry-run -v --verbose",
                S,
                "worktrees",
            )
        ),
        "submodule": _git(
            opts(
                "status init deinit update summary foreach sync absorbgitdirs set-branch set-url --quiet "
                "-q --recursive --init --remote --rebase --merge --checkout --force -f --cached --depth= "
                "--jobs= -j= --single-branch --no-fetch -N --files --all --progress --filter= "
                "--reference=",
                S,
                "submodules",
            ),
            opts("-b= --branch= --name=", S, "the submodule's branch or name"),
            remote_operand=1,  # submodule add URL
        ),
        "bisect": _git(
            opts(
                "start bad good new old skip reset visualize view replay log terms help --term-new= "
                "--term-old= --term-bad= --term-good= --no-checkout --first-parent",
                S,
                "bisection",
            )
        ),
        "difftool": _git(
            _DIFF,
            opts(
                "-d --dir-diff -y --no-prompt --prompt --symlinks --trust-exit-code --tool-help -g --gui",
                S,
                "which diff is shown",
            ),
            opts("-t= --tool=", D, "a tool from configuration: the command it runs is not in the call"),
            opts("-x= --extcmd=", X, "runs this command for every file"),
        ),
        "mergetool": _git(
            opts("-y --no-prompt --prompt -g --gui -O=", S, "which merge is resolved"),
            opts("-t= --tool=", D, "a tool from configuration"),
        ),
        "filter-branch": _git(
            opts(
                "-f --force --prune-empty --original= -d= --tag-name-filter= --subdirectory-filter= --setup=",
                D,
                "rewrites history with scripts",
            ),
            opts(
                "--env-filter= --tree-filter= --index-filter= --parent-filter= --msg-filter= "
                "--commit-filter=",
                X,
                "runs this shell snippet on every commit",
            ),
        ),
        "show-ref": _git(
            opts(
                "--head --heads --branches --tags -d --dereference -s --hash? --abbrev? --verify -q "
                "--quiet --exclude-existing? --exists",
                S,
                "refs shown",
            )
        ),
        "cat-file": _git(
            opts(
                "-t -s -e -p --batch? --batch-check? --batch-command? --batch-all-objects --buffer "
                "--follow-symlinks --unordered --textconv --filters --path= -Z --allow-unknown-type",
                S,
                "objects shown",
            )
        ),
        "reflog": _git(
            _LOG,
            opts(
                "show expire delete exists --expire= --expire-unreachable= --all --rewrite --updateref "
                "--stale-fix -n --dry-run",
                S,
                "reflog",
            ),
        ),
        "gc": _git(
            opts(
                "--aggressive --auto --quiet -q --prune? --no-prune --force --keep-largest-pack --cruft "
                "--detach",
                S,
                "housekeeping",
            )
        ),
        "fsck": _git(
            opts(
                "--unreachable --dangling --root --tags --cache --no-reflogs --full --connectivity-only "
                "--strict --verbose --lost-found --name-objects --progress",
                S,
                "checks",
            )
        ),
        "archive": _git(
            opts(
                "--format= -l --list -v --verbose --prefix= --add-file= --add-virtual-file= "
                "--worktree-attributes --mtime= -0 -1 -2 -3 -4 -5 -6 -7 -8 -9",
                S,
                "what is archived",
            ),
            opts("-o= --output=", W, "the archive is written there"),
            opts("--remote=", RM, "the archive comes from this repository"),
            opts("--exec=", H, "git runs this program: read by the git handler"),
        ),
        "merge-base": _git(
            opts("--all --octopus --independent --is-ancestor --fork-point", S, "what is computed")
        ),
        "range-diff": _git(
            _DIFF, opts("--creation-factor= --no-dual-color --left-only --right-only", S, "what is compared")
        ),
        "count-objects": _git(opts("-v --verbose -H --human-readable", S, "what is counted")),
        "check-ignore": _git(
            opts("-q --quiet -v --verbose --stdin -z -n --non-matching --no-index", S, "what is checked")
        ),
        "notes": _git(
            opts(
                "list show add copy append edit merge remove prune get-ref -m= -c= -C= --ref= -f --force "
                "--allow-empty",
                S,
                "notes",
            ),
            opts("-F= --file=", R, "the note is read from a file"),
        ),
        "help": _git(opts("-a --all -g --guides -c --config -i -m -w --info --man --web", S, "help")),
        "version": _git(opts("--build-options", S, "the version")),
        "var": _git(opts("-l", S, "variables shown")),
        "config": _git(
            opts(
                "--list -l --get --get-all --get-regexp --get-urlmatch --show-origin --show-scope "
                "--name-only "
                "-z --null --type= --bool --int --bool-or-int --path --expiry-date --default= --local "
                "--worktree -e --edit --includes --no-includes get list",
                S,
                "which configuration is read (writes are read by the git handler)",
            ),
            opts(
                "--global --system",
                H,
                "~/.gitconfig or /etc/gitconfig: a write there is read by the git handler",
            ),
            opts("-f= --file= --blob=", D, "a configuration file chosen by the caller"),
            opts(
                "--add --replace-all --unset --unset-all --rename-section --remove-section set unset "
                "rename-section remove-section",
                S,
                "a write: read by the git handler",
            ),
        ),
    }
)
_GIT = table(
    opts("-h --help --version", S, "prints and exits"),
    opts(
        "-p --paginate -P --no-pager --bare --no-replace-objects --literal-pathspecs --glob-pathspecs "
        "--noglob-pathspecs --icase-pathspecs --no-optional-locks --html-path --man-path --info-path "
        "--no-advice --list-cmds= --namespace= --attr-source=",
        S,
        "how git runs",
    ),
    opts("-C=", H, "where git runs: the shell inspector follows it"),
    opts("-c= --config-env=", H, "a configuration value: read by the git handler"),
    opts(
        "--git-dir= --work-tree= --exec-path? --super-prefix=",
        D,
        "another repository or git's own programs from elsewhere",
    ),
    subcommands=GIT_SUBCOMMANDS,
)

# -- make ------------------------------------------------------------------------------
_MAKE = table(
    opts("-h --help -v --version", S, "prints and exits"),
    opts(
        "-B --always-make -d --debug? -e --environment-overrides -i --ignore-errors -k --keep-going -S "
        "--no-keep-going --stop -n --just-print --dry-run --recon -q --question -r --no-builtin-rules -R "
        "--no-builtin-variables -s --silent --quiet --no-silent -t --touch --trace -w --print-directory "
        "--no-print-directory -p --print-data-base -j? --jobs? -l? --load-average? -O? --output-sync? "
        "-L --check-symlink-times --warn-undefined-variables --shuffle?",
        S,
        "how recipes run",
    ),
    opts("-C= --directory=", H, "where make runs: the shell inspector follows it"),
    opts("-f= --file= --makefile=", H, "the makefile: read by the make handler"),
    opts("-I= --include-dir=", R, "makefiles are included from there"),
    opts(
        "-o= --old-file= --assume-old= -W= --what-if= --new-file= --assume-new=",
        S,
        "which files count as changed",
    ),
    opts("-E= --eval=", H, "makefile text given inline: read by the make handler"),
    opts("--jobserver-auth= --jobserver-fds= --jobserver-style=", S, "the parent make's job slots"),
)
# Variables given on make's command line override the makefile's, and recipes run them: a
# variable that names a program is a command; flags and paths are data; anything else is doubt.
MAKE_VARIABLES: Final[Mapping[str, Effect]] = MappingProxyType(
    {
        **{
            n: Effect.EXEC
            for n in (
                "CC CXX CPP LD AR AS NM RANLIB STRIP OBJCOPY FC RM MAKE PYTHON PYTHON3 PIP PYTEST NPM NODE "
                "GO CARGO INSTALL PERL RUBY"
            ).split()
        },
        **{
            n: Effect.SAFE
            for n in (
                "CFLAGS CXXFLAGS CPPFLAGS LDFLAGS LDLIBS ARFLAGS V VERBOSE Q DEBUG O OPT J JOBS NPROC "
                "BUILD_TYPE CONFIG TARGET ARCH OS VERSION TEST TESTS ARGS PYTEST_ARGS TESTFLAGS TAGS NAME ENV"
            ).split()
        },
        **{
            n: Effect.WRITE
            for n in "PREFIX DESTDIR BUILDDIR BUILD_DIR OUT OUTDIR OUT_DIR BINDIR LIBDIR".split()
        },
        **{n: Effect.DOUBT for n in "SHELL .SHELLFLAGS MAKEFLAGS MAKEFILES MAKESHELL".split()},
    }
)

# -- downloaders -----------------------------------------------------------------------
_CURL = table(
    opts("-h --help -V --version -M --manual", S, "prints and exits"),
    opts(
        "-s --silent -S --show-error -f --fail --fail-with-body -L --location -v --verbose -i --include "
        "-I --head -k --insecure -g --globoff -G --get -N --no-buffer -# --progress-bar -n --netrc "
        "--netrc-optional --compressed -0 --http1.0 --http1.1 --http2 --http3 --http2-prior-knowledge "
        "-4 -6 --ipv4 --ipv6 -J --remote-header-name -R --remote-time --create-dirs -Z --parallel "
        "--parallel-immediate --parallel-max= -X= --request= -A= --user-agent= -e= --referer= "
        "--data-raw= --form-string= -u= --user= --oauth2-bearer= -r= --range= -m= --max-time= "
        "--connect-timeout= --retry= --retry-delay= --retry-max-time= --retry-all-errors --retry-connrefused "
        "--max-redirs= --max-filesize= --limit-rate= -y= --speed-time= -Y= --speed-limit= -C= "
        "--continue-at= --tlsv1.2 --tlsv1.3 --tls-max= --ssl-reqd --proto= --proto-redir= --proto-default= "
        "-j --junk-session-cookies --expand-url= -z= --time-cond= "
        "--no-progress-meter --styled-output --raw --no-keepalive --keepalive-time= --tcp-nodelay "
        "--path-as-is --post301 --post302 --post303 --digest --basic --ntlm --negotiate --anyauth "
        "--location-trusted --fail-early --show-headers --remove-on-error --skip-existing --false-start "
        "--no-sessionid --no-alpn --no-npn --sasl-ir --ssl-no-revoke --crlf -a --append -l --list-only "
        "-B --use-ascii -q --disable --trace-time --trace-ids --trace-config= -p --proxytunnel",
        S,
        "what is sent and how the answer is shown",
    ),
    opts(
        "-o= --output= -D= --dump-header= -c= --cookie-jar= --trace= --trace-ascii= --stderr= --libcurl= "
        "--etag-save= --hsts= --alt-svc= --output-dir=",
        W,
        "curl writes this file",
    ),
    opts("-O --remote-name --remote-name-all", S, "saves under the URL's name in the working directory"),
    data(
        "-d= --data= --data-binary= --data-ascii= --json= -w= --write-out=",
        "at",
        "sent as is, or @file sends the file (a -w format's %output{f} writes f)",
    ),
    data("-H= --header=", "header", "sent as is, or @file sends the file; Host: and its kin re-target it"),
    data(
        "-F= --form= --data-urlencode= --url-query= --variable=",
        "field",
        "name=@file, name=<file, name@file and @file send the file; --variable %NAME sends a variable",
    ),
    data("-b= --cookie=", "cookie", "name=value cookies, or (without =) a cookie file read and sent"),
    opts(
        "-T= --upload-file= --etag-compare= --cacert= --capath= -E= --cert= --key= --netrc-file=",
        R,
        "curl reads (and may send) this file",
    ),
    opts("--url=", C, "another URL to fetch"),
    opts(
        "-x= --proxy= --socks4= --socks4a= --socks5= --socks5-hostname= --preproxy= --proxy1.0= "
        "--socks5-gssapi-service=",
        P,
        "every connection goes through this proxy",
    ),
    opts(
        "-U= --proxy-user= --proxy-header= --proxy-insecure --proxy-cacert= --proxy-cert= --proxy-key= "
        "--noproxy= --proxy-basic --proxy-digest --proxy-ntlm --proxy-anyauth --haproxy-protocol "
        "--haproxy-clientip=",
        D,
        "proxy settings and files (@file headers): with -x they change where requests go",
    ),
    opts("-K= --config=", D, "a config file may add any option, URL or proxy"),
    opts(
        "--resolve= --connect-to= --unix-socket= --abstract-unix-socket= --dns-servers= --interface= "
        "--local-port= --doh-url=",
        H,
        "sends a name elsewhere: read by the curl handler",
    ),
    opts("--engine= --ftp-port= -P=", D, "an engine or active FTP address chosen by the caller"),
    operands=C,
)
_WGET = table(
    opts("-h --help -V --version", S, "prints and exits"),
    opts(
        "-q --quiet -v --verbose -nv --no-verbose -c --continue -N --timestamping -S --server-response "
        "--spider -r --recursive -l= --level= -np --no-parent -nc --no-clobber -nd --no-directories -x "
        "--force-directories -nH --no-host-directories -k --convert-links -p --page-requisites -m --mirror "
        "-t= --tries= -T= --timeout= -w= --wait= --random-wait --limit-rate= --user-agent= -U= "
        "--no-check-certificate --https-only --content-disposition --progress= --show-progress "
        "--max-redirect= --retry-connrefused --no-cache --no-cookies -A= --accept= -R= --reject= "
        "--cut-dirs= -nH --user= --password= --http-user= --http-password= --method= --body-data= "
        "--post-data= -4 -6 --inet4-only --inet6-only --compression= --quota= -Q= -D= --domains= "
        "--exclude-domains= -L --relative -H --span-hosts --no-proxy --ignore-length --adjust-extension -E "
        "--default-page= --restrict-file-names= --local-encoding= --remote-encoding= -b --background",
        S,
        "what is fetched and how",
    ),
    opts(
        "-O= --output-document= -o= --output-file= -a= --append-output= -P= --directory-prefix= "
        "--save-cookies= --warc-file= --save-headers",
        W,
        "wget writes there",
    ),
    opts(
        "--post-file= --body-file= --load-cookies= --ca-certificate= --certificate= --private-key=",
        R,
        "wget reads (and may send) this file",
    ),
    opts(
        "-i= --input-file= -F --force-html -B= --base= -e= --execute= --config=",
        D,
        "URLs or wgetrc commands from elsewhere",
    ),
    opts("-Y= --proxy= --proxy-user= --proxy-password=", D, "proxy settings"),
    data("--header=", "header", "sent as is; Host: and its kin re-target the request"),
    opts("--use-askpass=", X, "runs this program to ask for credentials"),
    operands=C,
)

# -- Python tools ----------------------------------------------------------------------
_PIP_COMMON = {
    **opts("--python=", Effect.PROGRAM, "pip runs itself under this interpreter: a path is that program"),
    **opts(
        "-h --help -V --version -q --quiet -v --verbose --isolated --no-input --no-color "
        "--require-virtualenv "
        "--disable-pip-version-check --no-cache-dir --timeout= --retries= --exists-action= "
        "--progress-bar= --root-user-action= --use-feature= --use-deprecated= --no-python-version-warning "
        "--debug --keyring-provider=",
        S,
        "how pip runs",
    ),
    **opts("--proxy=", P, "every download goes through this proxy"),
    **opts("--trusted-host= --cert= --client-cert=", D, "trust for connections changed"),
    **opts("--cache-dir= --log= --log-file= --src=", W, "pip writes there"),
}
_PIP_INSTALL = table(
    _PIP_COMMON,
    opts(
        "-U --upgrade --upgrade-strategy= --force-reinstall -I --ignore-installed --ignore-requires-python "
        "--no-deps --pre --no-build-isolation --use-pep517 --no-use-pep517 --check-build-dependencies "
        "--break-system-packages --user --no-binary= --only-binary= --prefer-binary --no-clean --no-index "
        "--no-compile --compile --no-warn-script-location --no-warn-conflicts --dry-run --report= "
        "--require-hashes --progress-bar= --platform= --python-version= --implementation= --abi= -y --yes "
        "--dest= -d= --exists-action= --no-deps --wheel-dir= -w=",
        S,
        "what is installed",
    ),
    opts("-r= --requirement= -c= --constraint=", R, "requirements read from a file"),
    opts("-e= --editable=", S, "a project installed in place (a URL in it is read like any URL)"),
    opts("-i= --index-url= --extra-index-url= -f= --find-links=", C, "packages come from here"),
    opts("-t= --target= --prefix= --root=", W, "packages are installed there"),
    opts(
        "-C= --config-settings= --global-option= --install-option= --build-option=",
        D,
        "options handed to a build backend",
    ),
)
_PIP = table(
    _PIP_COMMON,
    subcommands=MappingProxyType(
        {
            "install": _PIP_INSTALL,
            "download": _PIP_INSTALL,
            "wheel": _PIP_INSTALL,
            "uninstall": table(
                _PIP_COMMON, opts("-y --yes -r= --requirement= --break-system-packages", S, "what is removed")
            ),
            "list": table(
                _PIP_COMMON,
                opts(
                    "-o --outdated -u --uptodate -e --editable -l --local --user --path= --pre --format= "
                    "--not-required --exclude-editable --include-editable --exclude=",
                    S,
                    "what is listed",
                ),
                opts("-i= --index-url= --extra-index-url= -f= --find-links=", C, "packages come from here"),
            ),
            "show": table(_PIP_COMMON, opts("-f --files", S, "what is shown")),
            "freeze": table(
                _PIP_COMMON,
                opts(
                    "-l --local --user --path= --all --exclude-editable --exclude= -r= --requirement=",
                    S,
                    "what is listed",
                ),
            ),
            "check": table(_PIP_COMMON),
            "inspect": table(_PIP_COMMON, opts("--local --user --path=", S, "what is shown")),
            "hash": table(_PIP_COMMON, opts("-a= --algorithm=", S, "the hash")),
            "cache": table(_PIP_COMMON, opts("dir info list remove purge --format=", S, "pip's cache")),
            "index": table(
                _PIP_COMMON,
                opts("versions --pre", S, "what is listed"),
                opts("-i= --index-url= --extra-index-url= -f= --find-links=", C, "packages come from here"),
            ),
            "config": table(
                _PIP_COMMON,
                opts("list get debug --global --user --site", S, "configuration read"),
                opts("set unset edit --editor=", D, "pip configuration written: indexes, proxies and trust"),
            ),
            "debug": table(_PIP_COMMON),
            "help": table(_PIP_COMMON),
        }
    ),
)
_PYTEST = table(
    opts(
        "-h --help --version -V -q --quiet -v --verbose -x --exitfirst --maxfail= -k= -m= -s --capture= "
        "-l --showlocals --tb= -r= --durations= --durations-min= --lf --last-failed --ff --failed-first "
        "--nf --new-first --sw --stepwise --stepwise-skip --co --collect-only --pdb --trace --markers "
        "--fixtures --fixtures-per-test --setup-only --setup-show --setup-plan --strict-markers --strict "
        "--ignore= --ignore-glob= --deselect= --doctest-modules --doctest-glob= --import-mode= --rootdir= "
        "-W= --pythonwarnings= --color= --code-highlight= --no-header --no-summary -n= --numprocesses= "
        "--dist= --runxfail -p= --disable-warnings --disable-pytest-warnings -ra -rA --full-trace "
        "--cov? --cov-fail-under= --cov-config= --no-cov --cov-branch --count= --timeout= "
        "--random-order --lfnf= --cache-show? --cache-clear --continue-on-collection-errors --noconftest "
        "--confcutdir= --asyncio-mode= --benchmark-disable --verbosity= --debug? "
        "--log-level= --log-cli-level= --log-format= --log-cli-format= --show-capture= --capture=no "
        "--keep-duplicates --collect-in-virtualenv --junit-prefix= --pyargs --no-cov-on-fail "
        "--hypothesis-seed= "
        "--hypothesis-show-statistics --hypothesis-profile= --xfail-tb --trace-config",
        S,
        "which tests run and how results are shown",
    ),
    opts("-c= --config-file= --inifile=", R, "configuration read from a file"),
    opts(
        "--junitxml= --junit-xml= --log-file= --resultlog= --result-log= --report-log= --json-report-file=",
        W,
        "a report is written there",
    ),
    opts("--basetemp=", W, "pytest empties and fills this directory"),
    opts("--pastebin=", C, "sends the session log to bpaste.net"),
    opts(
        "--cov-report= -o= --override-ini=",
        H,
        "TYPE:PATH writes a report at PATH; -o KEY=VALUE overrides the ini file (addopts are options, "
        "python_files and pythonpath change what is imported): read by the pytest handler",
    ),
)
_RUFF_COMMON = opts(
    "-h --help -V --version -q --quiet -v --verbose -s --silent --config= --isolated --no-cache "
    "--cache-dir= --target-version= --line-length= --preview --no-preview --exclude= --extend-exclude= "
    "--respect-gitignore --no-respect-gitignore --force-exclude --no-force-exclude --stdin-filename= "
    "--check --diff --output-format= --select= --ignore= --extend-select= --extend-ignore= "
    "--per-file-ignores= --extend-per-file-ignores= --fix --no-fix --unsafe-fixes --no-unsafe-fixes "
    "--fix-only --show-fixes --show-files --show-settings --statistics --add-noqa --exit-zero "
    "--exit-non-zero-on-fix -w --watch -e -n --range= --fixable= --unfixable= --extend-fixable= "
    "-o= --output-file=",
    S,
    "what ruff checks, fixes or formats (in files it is given)",
)
_RUFF = table(
    _RUFF_COMMON,
    subcommands=MappingProxyType(
        {
            n: table(_RUFF_COMMON)
            for n in ("check", "format", "rule", "config", "linter", "clean", "version", "help", "analyze")
        }
    ),
)
_MYPY = table(
    opts(
        "-h --help -V --version -v --verbose --strict --ignore-missing-imports --follow-imports= "
        "--python-version= --platform= --config-file= --show-error-codes --hide-error-codes --pretty "
        "--no-error-summary --show-column-numbers --show-error-context --show-traceback --install-types "
        "--non-interactive --no-incremental --incremental --cache-dir= --sqlite-cache "
        "--explicit-package-bases "
        "--namespace-packages --no-namespace-packages --exclude= -m= --module= -p= --package= -c= --command= "
        "--disallow-untyped-defs --disallow-any-generics --check-untyped-defs --warn-unused-ignores "
        "--warn-return-any --warn-redundant-casts --no-implicit-optional --strict-optional "
        "--disallow-untyped-calls --disallow-incomplete-defs --disable-error-code= --enable-error-code= "
        "--always-true= --always-false= --color-output --no-color-output --warn-unreachable "
        "--local-partial-types "
        "--allow-redefinition --no-site-packages --untyped-calls-exclude= --soft-error-limit= --extra-checks",
        S,
        "what mypy checks",
    ),
    opts(
        "--junit-xml= --html-report= --txt-report= --linecount-report= --cobertura-xml-report= "
        "--any-exprs-report= --lineprecision-report= --xml-report=",
        W,
        "mypy writes its report there",
    ),
    opts("--python-executable=", D, "mypy runs this interpreter to find its packages"),
)
_SPHINX_BUILD = table(
    opts("-h --help --version", S, "prints and exits"),
    opts(
        "-a -E -n -N -q -Q -v -vv -vvv -W -T -P -j= --jobs= -t= --tag= -C --isolated -A= --html-define= "
        "-D= --define= --keep-going --fail-on-warning --fresh-env --write-all --nitpicky --no-color "
        "--color --quiet --silent --verbose --show-traceback --pdb --exception-on-warning "
        "-c= --conf-dir=",
        S,
        "how the documents are built (conf.py is the project's Python, as conftest.py is pytest's)",
    ),
    opts(
        "-b= --builder= -M=",
        H,
        "the builder: linkcheck connects to every link in the documents (read by its handler)",
    ),
    opts("-d= --doctree-dir= -w= --warning-file=", W, "a cache or log written where it says"),
)
_PYLINT = table(
    opts(
        "-h --help --long-help --version --list-msgs --list-msgs-enabled --list-groups --list-conf-levels "
        "--list-extensions --full-documentation --generate-rcfile --generate-toml-config --help-msg=",
        S,
        "prints and exits",
    ),
    opts(
        "-E --errors-only --disable= -d= --enable= -e= --jobs= -j= --recursive= --output-format= -f= "
        "--reports= -r= --score= -s= --exit-zero --fail-under= --fail-on= --ignore= --ignore-patterns= "
        "--ignore-paths= --good-names= --good-names-rgxs= --bad-names= --bad-names-rgxs= "
        "--max-line-length= --msg-template= --confidence= --py-version= --verbose -v --persistent= "
        "--unsafe-load-any-extension= --suggestion-mode= --clear-cache-post-run= --source-roots= "
        "--max-args= --max-locals= --max-branches= --max-statements= --min-similarity-lines= "
        "--ignored-modules= --ignored-classes= --disable-all --from-stdin --rcfile= --load-plugins=",
        S,
        "what pylint checks and how it reports (plugins are modules of the environment, as imports are)",
    ),
    opts("--output= -o=", W, "the report is written where it says"),
)
_PATCH = table(
    HELP,
    opts(
        "-p= --strip= -R --reverse -N --forward -f --force -t --batch -s --silent --quiet -u --unified "
        "-c --context -n --normal -e --ed -l --ignore-whitespace -F= --fuzz= -E --remove-empty-files "
        "--dry-run --verbose -b --backup --no-backup-if-mismatch --backup-if-mismatch -V= "
        "--version-control= -z= --suffix= -B= --prefix= -Z --set-utc -T --set-time --posix "
        "--binary --merge --merge= -g= --get= --follow-symlinks --reject-format= -D= --ifdef= "
        "--read-only= --quoting-style=",
        S,
        "how the patch is applied: to the files it names, under the working directory "
        "(GNU patch ignores absolute and .. names)",
    ),
    opts("-i= --input=", R, "the patch is read from this file"),
    opts("-o= --output= -r= --reject-file=", W, "the result or the rejects are written here"),
    opts("-d= --directory=", D, "applies the patch in another directory"),
)
_PYREVERSE = table(
    opts("-h --help --version", S, "prints and exits"),
    opts(
        "-o= --output= -p= --project= -a= -s= -A -S -m= -k -f= --filter-mode= -c= --class= "
        "--all-ancestors --all-associated --show-ancestors= --show-associated= --module-names= "
        "--only-classnames --show-builtin -b --ignore= --colorized --max-color-depth= "
        "--color-palette= --source-roots= --no-standalone --show-stdlib -L",
        S,
        "which diagrams are drawn and how (from the modules named)",
    ),
    opts("-d= --output-directory=", W, "the diagrams are written there"),
)
_DOT = table(
    opts("-V -? --help", S, "prints and exits"),
    opts(
        "-T= -K= -G= -N= -E= -v -q -q1 -q2 -s= -y -n -n1 -n2 -x -c -O -P -Lg -LO -Ln= -LU= -LC= -LT=",
        S,
        "the output format, layout and graph attributes",
    ),
    opts("-o=", W, "the drawing is written there"),
    opts("-l=", R, "a PostScript library is read"),
)
_BLACK = table(
    opts(
        "-h --help --version -q --quiet -v --verbose --check --diff --color --no-color -l= --line-length= "
        "-t= --target-version= --pyi --ipynb --python-cell-magics= -S --skip-string-normalization -C "
        "--skip-magic-trailing-comma --preview --unstable --enable-unstable-feature= --fast --safe "
        "--required-version= --include= --exclude= --extend-exclude= --force-exclude= --stdin-filename= "
        "-W= --workers= --config= -c= --code= -x --skip-source-first-line --line-ranges= --no-cache",
        S,
        "how files are formatted",
    ),
)
_ISORT = table(
    opts(
        "-h --help -V --version -q --quiet -v --verbose --check --check-only -c --diff -d --profile= "
        "--settings-path= --sp= --settings-file= -l= --line-length= --atomic --skip= --skip-glob= "
        "--filter-files --float-to-top --force-single-line-imports --sl --py= -m= --multi-line= "
        "--trailing-comma --tc --color --jobs= -j= --only-modified --show-files --stdout --src= "
        "--combine-as --ca --no-inline-sort --known-first-party= --known-third-party= --virtual-env= "
        "--resolve-all-configs --skip-gitignore --extend-skip= --extend-skip-glob=",
        S,
        "how imports are sorted",
    ),
)
_TOX = table(
    opts(
        "-h --help --version -q -v -vv -e= --env= -r --recreate -p? --parallel? --parallel-live -o "
        "--skip-missing-interpreters? -m= -f= --colored= --develop --no-provision? "
        "--notest -n --skip-pkg-install --list-dependencies -l --list-envs -a --listenvs-all --showconfig",
        S,
        "which environments run (their commands come from the project's tox configuration; "
        "tox exec's command and the arguments after -- are read by the tox handler)",
    ),
    opts(
        "-x= --override= -c= --conf= --root= --workdir= --installpkg= --discover= --runner=",
        D,
        "another configuration (-x testenv.commands=... is a command), project root, package or "
        "interpreter: what runs is not in the project's recorded tox configuration",
    ),
    opts("--result-json=", W, "tox writes its report there"),
    stop=None,
)

# -- JavaScript, Rust, Go, uv, poetry --------------------------------------------------
_NPM_COMMON = {
    **opts(
        "-h --help -v --version -s --silent -q --quiet -d --loglevel= --json --parseable -w= --workspace= "
        "--workspaces --ws --include-workspace-root --if-present --ignore-scripts --no-audit --no-fund "
        "--prefer-offline --prefer-online --offline --legacy-peer-deps --strict-peer-deps --force -f -g "
        "--global -D --save-dev -P --save-prod -O --save-optional -E --save-exact --no-save --save "
        "--production --omit= --include= --dry-run --foreground-scripts --color= --progress --no-progress "
        "--package-lock-only --no-package-lock --install-links --lockfile-version= --depth= --all -a "
        "--long -l --fix --audit-level= --tag= --access= --otp= --before= --cpu= --os= --libc= -y --yes",
        S,
        "what npm does (package scripts come from package.json; what npm exec runs is read apart)",
    ),
    **opts("--registry=", C, "packages come from this registry"),
    **opts("--proxy= --https-proxy=", P, "every download goes through this proxy"),
    **opts(
        "--userconfig= --globalconfig= --script-shell= --node-options= --cafile= --ca= --strict-ssl",
        D,
        "another config, shell or trust anchor",
    ),
    **opts("--prefix= -C= --cache=", W, "npm writes there"),
}
_NPM_VERBS = (
    "install i add ci uninstall remove rm un update up upgrade test t run run-script start stop restart "
    "build ls list ll outdated audit fund view info show search init pack version explain why doctor "
    "prune dedupe rebuild config get set help bin root prefix cache exec x pkg query sbom"
)
_NPM = table(
    _NPM_COMMON,
    subcommands=MappingProxyType(
        {
            v: table(_NPM_COMMON, stop=1 if v in ("run", "run-script", "exec", "x") else None)
            for v in _NPM_VERBS.split()
        }
    ),
)
_YARN = table(
    _NPM_COMMON,
    opts(
        "--frozen-lockfile --immutable --check-files --pure-lockfile --non-interactive --cwd= --mode= "
        "--inline-builds",
        S,
        "how yarn installs",
    ),
    subcommands=MappingProxyType(
        {
            v: table(
                _NPM_COMMON,
                opts(
                    "--frozen-lockfile --immutable --check-files --pure-lockfile --non-interactive --cwd= "
                    "--mode= --inline-builds",
                    S,
                    "how yarn installs",
                ),
                stop=1 if v in ("run", "exec", "dlx", "node") else None,
            )
            for v in (_NPM_VERBS + " dlx node workspace workspaces why").split()
        }
    ),
)
_CARGO_COMMON = {
    **opts(
        "-h --help -V --version -v -vv --verbose -q --quiet --color= --frozen --locked --offline -Z= "
        "--release -r --profile= --features= -F= --all-features --no-default-features --target= "
        "--target-dir= --manifest-path= -p= --package= --workspace --all --exclude= -j= --jobs= --lib "
        "--bin= --bins --example= --examples --test= --tests --bench= --benches --all-targets --doc "
        "--no-run --no-fail-fast --message-format= --keep-going --timings? --ignore-rust-version "
        "--future-incompat-report --unit-graph --build-plan --open --no-deps --document-private-items "
        "--fix --allow-dirty --allow-staged --allow-no-vcs --edition --edition-idioms --check --all-targets "
        "-D= -W= -A= --dev --build --optional --rename= --git= --branch= --tag= --rev= --path= --precise= "
        "--aggressive --recursive --dry-run --vers= --version= --force -f --root= --list --name= "
        "--vcs= --registry= --index=",
        S,
        "what cargo builds, tests or changes (build scripts come from the project)",
    ),
    **opts("--config=", D, "configuration given inline may set a linker, runner or proxy"),
}
_CARGO_VERBS = (
    "build b check c test t run r bench doc clean fmt clippy fetch update add remove tree metadata new init "
    "install uninstall search package vendor generate-lockfile locate-project pkgid verify-project "
    "version help"
)
_CARGO = table(
    _CARGO_COMMON,
    # publish (and login, owner, yank) are left out: uploading the crate with the stored token,
    # as npm publish, is doubt
    subcommands=MappingProxyType({v: table(_CARGO_COMMON, stop=None) for v in _CARGO_VERBS.split()}),
)
_GO_COMMON = opts(
    "-h -help -v -x -n -a -race -msan -asan -cover -covermode= -coverpkg= -run= -bench= "
    "-benchmem -benchtime= -count= -timeout= -short -failfast -json -p= -tags= -trimpath -mod= -modfile= "
    "-ldflags= -gcflags= -asmflags= -buildmode= -buildvcs= -u -t -d -C= -cpu= -parallel= -list= "
    "-skip= -shuffle= -fuzz= -fuzztime= -vet= -m -f= -fix -e -insecure -work -linkshared -installsuffix= "
    "-pgo= -compiler= -gccgoflags= -overlay=",
    S,
    "what go builds or tests (the module's own code runs in tests)",
)
_GO_RISK = {
    **opts("-toolexec= -exec=", X, "go runs every tool or test binary through this program"),
    **opts("-o=", W, "the binary is written there"),
    **opts(
        "-coverprofile= -cpuprofile= -memprofile= -blockprofile= -mutexprofile= -trace= -outputdir=",
        W,
        "go test writes its profile there",
    ),
}
_GO_VERBS = "build test vet fmt mod get install list version clean doc work help fix bug telemetry"
_GO = table(
    _GO_COMMON,
    subcommands=MappingProxyType(
        {
            **{v: table(_GO_COMMON, _GO_RISK, single_dash_long=True) for v in _GO_VERBS.split()},
            "run": table(_GO_COMMON, _GO_RISK, single_dash_long=True, stop=1),
            "generate": table(
                opts("-run= -skip= -n -v -x", D, "runs the commands written in //go:generate lines"),
                single_dash_long=True,
            ),
            "env": table(
                _GO_COMMON,
                opts("-w -u", D, "changes go's configuration (GOPROXY, GOFLAGS...)"),
                single_dash_long=True,
            ),
            "tool": table(_GO_COMMON, opts("-n", S, "prints the tool's path"), single_dash_long=True, stop=1),
        }
    ),
    single_dash_long=True,
)
_UV_COMMON = {
    **opts("--python= -p=", Effect.PROGRAM, "the interpreter uv runs: a path is that program"),
    **opts(
        "-h --help -V --version -q --quiet -v --verbose --no-cache -n --offline --frozen --locked "
        "--no-sync --all-extras --extra= --group= --dev --no-dev --only-dev --all-groups --no-group= "
        "--preview --no-progress --color= --native-tls --managed-python --no-managed-python "
        "--system --upgrade -U --upgrade-package= -P= --reinstall --no-build-isolation --compile-bytecode "
        "--resolution= --prerelease= --exact --inexact --all-packages --package= --no-install-project "
        "--no-editable --output-format= -r= --requirement= -e= --editable= --seed --prompt= --with= "
        "--isolated --no-project --script= --all --check --dry-run --refresh --link-mode= --index-strategy= "
        "--no-deps --break-system-packages --strict --target= --prefix= --no-config",
        S,
        "what uv resolves, installs or runs",
    ),
    **opts(
        "-i= --index-url= --extra-index-url= --index= --default-index= -f= --find-links=",
        C,
        "packages come from here",
    ),
    **opts("--cache-dir= --directory= --project=", S, "where uv works"),
    **opts("--config-file= --allow-insecure-host= --keyring-provider=", D, "another config or trust anchor"),
}
_UV = table(
    _UV_COMMON,
    subcommands=MappingProxyType(
        {
            **{
                v: table(_UV_COMMON)
                for v in "sync lock add remove tree venv version export init build publish cache self".split()
            },
            "pip": table(
                _UV_COMMON,
                subcommands=MappingProxyType(
                    {
                        v: table(_UV_COMMON)
                        for v in "install uninstall list show freeze compile sync check tree".split()
                    }
                ),
            ),
            "run": table(_UV_COMMON, stop=0),
            "tool": table(_UV_COMMON, stop=0),
        }
    ),
)
_POETRY_COMMON = opts(
    "-h --help -V --version -q --quiet -v -vv -vvv --verbose -n --no-interaction --ansi --no-ansi "
    "--no-plugins --no-cache -C= --directory= -P= --project= --with= --without= --only= --only-root "
    "--no-root --sync --extras= -E= --all-extras --all-groups --dry-run --compile --lock --no-update "
    "--check --group= -G= --dev -D --optional --editable -e --allow-prereleases --source= --python= "
    "--tree --top-level --latest -l --outdated -o --why --format= -f= --output= -o= --without-hashes "
    "--with-credentials --next-phase --short -s --build --clean",
    S,
    "what poetry resolves or installs",
)
_POETRY = table(
    _POETRY_COMMON,
    subcommands=MappingProxyType(
        {
            **{
                v: table(_POETRY_COMMON)
                for v in (
                    "install update add remove lock show check build version env init new export search sync "
                    "about list help"
                ).split()
            },
            "run": table(_POETRY_COMMON, stop=0),
            "shell": table(_POETRY_COMMON),
            "config": table(
                _POETRY_COMMON,
                opts("--list --unset --local", D, "poetry configuration: repositories, credentials"),
            ),
            "source": table(
                _POETRY_COMMON, opts("add remove show --priority=", D, "a package source from a URL")
            ),
            "publish": table(
                _POETRY_COMMON,
                opts("-r= --repository= -u= --username= -p= --password=", D, "uploads the package"),
            ),
        }
    ),
)
_CMAKE = table(
    opts(
        "-h --help --version -S= -B= -G= -T= -A= --build= --target= -t= --config= --parallel? -j? "
        "--clean-first "
        "--verbose -v --fresh --install= --prefix= --component= --strip --log-level= --warn-uninitialized "
        "--no-warn-unused-cli -Wdev -Wno-dev -Werror= -Wno-error= --preset= --list-presets? --graphviz= "
        "--trace --trace-expand --debug-output --check-system-vars --compile-no-warning-as-error "
        "--toolchain= --install-prefix= -LA -LH -L -N --use-stderr --workflow --system-information",
        S,
        "how the project is configured and built (its CMakeLists runs as the project's code)",
    ),
    opts("-C=", D, "a cache script run before configuring (set(CMAKE_C_COMPILER ...) and the like)"),
    opts("-P=", D, "runs a cmake script file"),
    opts("-E=!", H, "command mode: its command and operands are read by the cmake handler"),
    opts("-U=", S, "removes cache entries"),
    prefixes=(
        (
            "-D",
            Opt(
                H,
                True,
                "a cache variable: one naming a program or script the build runs is doubt (cmake handler)",
            ),
        ),
        ("-W", Opt(S, False, "a warning switch")),
    ),
    single_dash_long=True,
)
_CTEST = table(
    opts(
        "-h --help --version -V --verbose -VV --extra-verbose -N --show-only? -R= --tests-regex= -E= "
        "--exclude-regex= -L= --label-regex= -LE= -j= --parallel= -C= --build-config= --output-on-failure "
        "-Q --quiet --test-dir= --timeout= --stop-on-failure --rerun-failed --repeat= --schedule-random "
        "-I= --tests-information= -U --union --no-tests= --progress --test-output-size-passed= "
        "--test-output-size-failed= --max-width= -F",
        S,
        "which tests run",
    ),
    opts("-O= --output-log= --output-junit=", W, "a log is written there"),
    opts("-S= -D= -T= -M= --build-and-test -P=", D, "dashboard scripts and modes run other commands"),
    single_dash_long=True,
)

DEV: Final[Mapping[str, Table]] = MappingProxyType(
    {
        "git": _GIT,
        "make": _MAKE,
        "gmake": _MAKE,
        "curl": _CURL,
        "wget": _WGET,
        "pip": _PIP,
        "pytest": _PYTEST,
        "py.test": _PYTEST,
        "ruff": _RUFF,
        "mypy": _MYPY,
        "black": _BLACK,
        "sphinx-build": _SPHINX_BUILD,
        "pylint": _PYLINT,
        "pyreverse": _PYREVERSE,
        "dot": _DOT,
        "patch": _PATCH,
        "isort": _ISORT,
        "tox": _TOX,
        "npm": _NPM,
        "pnpm": _NPM,
        "yarn": _YARN,
        "cargo": _CARGO,
        "go": _GO,
        "uv": _UV,
        "poetry": _POETRY,
        "cmake": _CMAKE,
        "ctest": _CTEST,
    }
)
