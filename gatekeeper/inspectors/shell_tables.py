"""Option tables of the programs the default pack allows: files, text and archives.

Each entry says what an option does and why (see ``shell_options``). Options a table does not
name are doubt. Development tools (git, make, package managers, downloaders) are in
``shell_tables_dev``; ``TABLES`` here holds both.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

from gatekeeper.inspectors.shell_options import (
    COMPILER_FLAG_VARS,
    Effect,
    Opt,
    Table,
    apply,
    compiler_flags,
    opts,
    python_path,
    table,
    walk,
)
from gatekeeper.inspectors.shell_programs import TABLE_CAPS, Word, option_values
from gatekeeper.inspectors.shell_tables_dev import DEV, MAKE_VARIABLES

if TYPE_CHECKING:
    from gatekeeper.inspectors.shell import Inspection

__all__ = ["TABLES", "check_program", "make_words"]

S, R, W, X, C, P, D, H = (
    Effect.SAFE,
    Effect.READ,
    Effect.WRITE,
    Effect.EXEC,
    Effect.CONNECT,
    Effect.PROXY,
    Effect.DOUBT,
    Effect.HANDLED,
)
HELP = opts("--help --version", S, "prints and exits")
FORMAT = "output format only"
SELECT = "what is shown or matched"

_LS = table(
    HELP,
    opts(
        "-a -A -b -B -c -C -d -f -F -g -G -h -H -i -k -l -L -m -n -N -o -p -q -Q -r -R -s -S -t -u -U -v "
        "-x -X -Z -1 --all --almost-all --author --escape --ignore-backups --directory --classify "
        "--file-type --no-group --human-readable --si --dereference-command-line "
        "--dereference-command-line-symlink-to-dir --inode --dereference --numeric-uid-gid --literal "
        "--hide-control-chars --show-control-chars --quote-name --recursive --reverse --size --context "
        "--group-directories-first --full-time --color --colour --format= --hyperlink --indicator-style= "
        "--quoting-style= --sort= --time= --time-style= --block-size= --zero",
        S,
        FORMAT,
    ),
    opts("-I= -w= -T= --ignore= --hide= --width= --tabsize=", S, SELECT),
)
_CAT = table(
    HELP,
    opts(
        "-A -b -e -E -n -s -t -T -u -v --show-all --number-nonblank --number --squeeze-blank "
        "--show-ends --show-tabs --show-nonprinting",
        S,
        FORMAT,
    ),
)
_HEAD_TAIL = table(
    HELP,
    opts(
        "-c= -n= -q -v -z -f -F -s= --bytes= --lines= --quiet --silent --verbose --zero-terminated "
        "--follow --retry --sleep-interval= --pid= --max-unchanged-stats=",
        S,
        SELECT,
    ),
    numeric=True,
)
_GREP = table(
    HELP,
    opts(
        "-E -F -G -P -i -y -v -w -x -c -L -l -o -q -s -b -H -h -n -T -Z -z -a -I -r -R -U --extended-regexp "
        "--fixed-strings --basic-regexp --perl-regexp --ignore-case --no-ignore-case --invert-match "
        "--word-regexp --line-regexp --count --color --colour --files-without-match --files-with-matches "
        "--only-matching --quiet --silent --no-messages --byte-offset --with-filename --no-filename "
        "--line-number --initial-tab --null --null-data --text --recursive --dereference-recursive "
        "--binary --line-buffered --label= --binary-files= --devices= --directories= --exclude= "
        "--exclude-dir= -m= -A= -B= -C= -d= -D= --max-count= --after-context= "
        "--before-context= --context=",
        S,
        SELECT,
    ),
    opts("-e= --regexp=", H, "the pattern"),
    opts("-f= --file= --exclude-from=", R, "patterns read from a file"),
    opts("--include=", H, "which files a recursive search reads: a secret's name is read (grep handler)"),
    numeric=True,
)
_RG = table(
    HELP,
    opts(
        "-i -s -S -v -w -x -c -l -o -q -n -N -H -I -F -U -P -u -uu -uuu -a -z -L -0 -p -b -. --ignore-case "
        "--case-sensitive --smart-case --invert-match --word-regexp --line-regexp --count --count-matches "
        "--files-with-matches --files-without-match --only-matching --quiet --line-number --no-line-number "
        "--with-filename --no-filename --fixed-strings --multiline --multiline-dotall --pcre2 --unrestricted "
        "--text --search-zip --follow --null --pretty --heading --no-heading --hidden --no-ignore "
        "--no-ignore-vcs --no-ignore-dot --no-ignore-parent --no-ignore-global --files --json --vimgrep "
        "--stats --column --trim --byte-offset --sort-files --debug --no-messages --type-list "
        "--color= --colors= -t= --type= -T= --type-not= --type-add= -m= --max-count= "
        "-A= -B= -C= --after-context= --before-context= --context= -r= --replace= -j= --threads= "
        "-d= --max-depth= -M= --max-columns= --max-filesize= --sort= --sortr= -E= --encoding= "
        "--engine= --path-separator= --context-separator= --field-match-separator= --max-columns-preview",
        S,
        SELECT,
    ),
    opts("-e= --regexp=", H, "the pattern"),
    opts("-f= --file= --ignore-file=", R, "patterns read from a file"),
    opts("--pre= --pre-glob=", H, "rg --pre runs a program on every file: read by the rg handler"),
    opts("-g= --glob= --iglob=", H, "which files are searched: a secret file's name is read (rg handler)"),
)
_WC = table(
    HELP,
    opts("-c -m -l -L -w --bytes --chars --lines --max-line-length --words --total=", S, FORMAT),
    opts("--files0-from=", R, "file names read from a file"),
)
_SORT = table(
    HELP,
    opts(
        "-b -d -f -g -h -i -M -n -R -r -V -c -C -m -s -u -z --ignore-leading-blanks --dictionary-order "
        "--ignore-case --general-numeric-sort --human-numeric-sort --ignore-nonprinting --month-sort "
        "--numeric-sort --random-sort --reverse --version-sort --check --merge --stable --unique "
        "--zero-terminated --debug -k= -t= -S= --key= --field-separator= --buffer-size= --parallel= "
        "--sort= --random-source= --batch-size=",
        S,
        SELECT,
    ),
    opts("-o= --output=", W, "the sorted result is written there"),
    opts("-T= --temporary-directory=", W, "temporary files are written there"),
    opts("--files0-from=", D, "sorts (prints) the files a file names: which files is not known here"),
    opts("--compress-program=", X, "sort runs this program to compress its temporary files"),
)
_UNIQ = table(
    HELP,
    opts(
        "-c -d -D -i -u -z --count --repeated --all-repeated --ignore-case --unique --zero-terminated "
        "-f= -s= -w= --skip-fields= --skip-chars= --check-chars= --group",
        S,
        SELECT,
    ),
    numeric=True,
)
_CUT = table(
    HELP,
    opts(
        "-b= -c= -d= -f= -n -s -z --bytes= --characters= --delimiter= --fields= --complement "
        "--only-delimited --output-delimiter= --zero-terminated",
        S,
        SELECT,
    ),
)
_TR = table(
    HELP,
    opts("-c -C -d -s -t --complement --delete --squeeze-repeats --truncate-set1", S, SELECT),
)
_DIFF = table(
    HELP,
    opts(
        "-q -s -c -u -e -n -y -l -t -T -r -N -a -w -b -B -E -Z -i -d -p --brief --report-identical-files "
        "--normal --ed --rcs --side-by-side --left-column --suppress-common-lines --show-c-function "
        "--expand-tabs --initial-tab --paginate --recursive --new-file --unidirectional-new-file "
        "--text --ignore-all-space --ignore-space-change --ignore-blank-lines --ignore-tab-expansion "
        "--ignore-trailing-space --ignore-case --ignore-file-name-case --no-ignore-file-name-case "
        "--minimal --speed-large-files --strip-trailing-cr --suppress-blank-empty --color "
        "--unified --context -U= -C= -W= -I= -x= -F= -L= -S= --label= --width= --exclude= "
        "--ignore-matching-lines= --show-function-line= --starting-file= --tabsize= --from-file= "
        "--to-file= --horizon-lines= --line-format= --old-line-format= --new-line-format= "
        "--unchanged-line-format= --old-group-format= --new-group-format= --changed-group-format= "
        "--unchanged-group-format= --palette=",
        S,
        FORMAT,
    ),
    opts("-X= --exclude-from=", R, "patterns read from a file"),
    numeric=True,
)
_JQ = table(
    HELP,
    opts(
        "-r -j -a -c -n -e -s -S -C -M -R -0 --raw-output --join-output --ascii-output --compact-output "
        "--null-input --exit-status --slurp --sort-keys --color-output --monochrome-output --raw-input "
        "--tab --seq --stream --stream-errors --raw-output0 --indent= --arg== --argjson== --args "
        "--jsonargs --unbuffered",
        S,
        FORMAT,
    ),
    opts("-f= --from-file= --slurpfile== --rawfile== -L=", R, "a filter or data read from a file"),
)
_TREE = table(
    HELP,
    opts(
        "-a -d -l -f -x -i -q -N -Q -p -u -g -s -h -D -F -r -t -c -U -v -C -n -A -S -J -X --noreport "
        "--dirsfirst --filesfirst --du --si --inodes --device --prune --gitignore --fromfile -L= -P= -I= "
        "--charset= --filelimit= --sort= --timefmt= --matchdirs --ignore-case",
        S,
        FORMAT,
    ),
    opts("-o=", W, "the listing is written there"),
)
_WHICH = table(
    HELP, opts("-a -s --all --skip-alias --skip-functions --read-alias --read-functions", S, FORMAT)
)
_DATE = table(
    HELP,
    opts(
        "-u -R -I --utc --universal --rfc-email --rfc-2822 --iso-8601 --rfc-3339= -d= --date= -r= "
        "--reference= --debug -f= --file=",
        S,
        "which date is printed",
    ),
    opts("-s= --set=", D, "sets the system clock"),
)
_SLEEP = table(HELP)
# echo, printf, test/[ and true/false have no table: their words are text or test operators
# (``echo --- done``, ``test -f x``), and what they evaluate is read by ``bash_eval``.
_PWD = table(HELP, opts("-L -P --logical --physical", S, FORMAT))
_MKDIR = table(
    HELP,
    opts("-p -v --parents --verbose -m= --mode= -Z --context=", S, "how the directory is made"),
)
_TOUCH = table(
    HELP,
    opts(
        "-a -c -h -m -f --no-create --no-dereference --time= -d= --date= -t= -r= --reference=",
        S,
        "which times are set",
    ),
)
_RM = table(
    HELP,
    opts(
        "-f -i -I -r -R -d -v --force --interactive --one-file-system --no-preserve-root --preserve-root "
        "--recursive --dir --verbose",
        S,
        "how the operands (each a write) are removed",
    ),
)
_CP = table(
    HELP,
    opts(
        "-a -b -d -f -i -H -l -L -n -P -p -R -r -s -T -u -v -x -Z --archive --attributes-only --backup "
        "--copy-contents --force --interactive --link --dereference --no-clobber --no-dereference "
        "--preserve --no-preserve --parents --recursive --remove-destination --sparse= "
        "--strip-trailing-slashes "
        "--symbolic-link --no-target-directory --update --verbose --one-file-system --reflink --debug "
        "--context -S= --suffix= --exchange",
        S,
        "how files are copied (the destination is a write)",
    ),
    opts("-t= --target-directory=", H, "the destination: read by the copy handler"),
)
_MV = table(
    HELP,
    opts(
        "-b -f -i -n -T -u -v -Z --backup --force --interactive --no-clobber --no-copy "
        "--strip-trailing-slashes --no-target-directory --update --verbose --context -S= --suffix= "
        "--exchange",
        S,
        "how files are moved (sources and destination are writes)",
    ),
    opts("-t= --target-directory=", H, "the destination: read by the copy handler"),
)
_TAR = table(
    HELP,
    opts(
        "-c -x -t -r -u -A -d -v -z -j -J -a -p -k -h -m -O -S -W -B -G -M -i -l -o -s -w --create "
        "--extract --get --list --append --update --catenate --concatenate --diff --compare --delete "
        "--verbose --gzip --gunzip --ungzip --bzip2 --xz --lzip --lzma --lzop --zstd --auto-compress "
        "--preserve-permissions --same-permissions --keep-old-files --keep-newer-files --skip-old-files "
        "--dereference --touch --to-stdout --sparse --verify --multi-volume --ignore-zeros "
        "--ignore-failed-read --numeric-owner --no-same-owner --same-owner --no-same-permissions "
        "--overwrite --overwrite-dir --recursive-unlink --unlink-first --remove-files --totals "
        "--wildcards --anchored --ignore-case --exclude-vcs --exclude-vcs-ignores --exclude-backups "
        "--exclude-caches --one-file-system --show-transformed-names --full-time --utc "
        "--sort= --format= --owner= --group= --mode= --mtime= --exclude= --strip-components= -b= "
        "--blocking-factor= --record-size= -H= -L= --tape-length= -V= --label= --checkpoint "
        "--warning= --occurrence --no-recursion --recursion --null --acls --xattrs --selinux "
        "--no-acls --no-xattrs --no-selinux --level= --delay-directory-restore --index-file= -n --seek "
        "-K= --starting-file= -N= --newer= --after-date= --newer-mtime= --backup --suffix= --pax-option= "
        "--clamp-mtime --no-wildcards --quoting-style= --hole-detection=",
        S,
        "what is archived and how",
    ),
    opts(
        "-f= --file=",
        H,
        "the archive; [user@]host:path (a colon before any slash) is reached with rsh/ssh unless "
        "--force-local: read by the tar handler",
    ),
    opts("-C= --directory=", H, "where members land: the shell inspector follows it"),
    opts("-X= --exclude-from=", R, "names read from a file"),
    opts("-T= --files-from=", D, "archives the files a file names: which files is not known here"),
    opts("-P --absolute-names", W, "members keep absolute paths: extraction may write anywhere"),
    opts("-g= --listed-incremental=", W, "the snapshot file is written"),
    opts(
        "-F= --info-script= --new-volume-script= --to-command= --rsh-command= --use-compress-program= "
        "-I= --checkpoint-action=",
        H,
        "tar runs a program: read by the tar handler",
    ),
    opts("--transform= --xform=", H, "renames members: read for renamed programs by the tar handler"),
    opts("--rmt-command=", X, "tar runs this program on the remote side"),
    opts("--force-local", H, "host:path archives are local files: read by the tar handler"),
    old_style=True,
)
_GZIP = table(
    HELP,
    opts(
        "-c -d -f -h -k -l -L -n -N -q -r -t -v -1 -2 -3 -4 -5 -6 -7 -8 -9 --stdout --to-stdout "
        "--decompress --uncompress --force --keep --list --license --no-name --name --quiet --recursive "
        "--rsyncable --test --verbose --fast --best --synchronous -S= --suffix=",
        S,
        "how files are compressed",
    ),
)
_UNZIP = table(
    opts(
        "-l -v -t -z -T -Z -f -u -o -n -j -C -L -V -X -a -aa -b -q -qq -M -U -UU -K -O= -I= -x -p -c",
        S,
        "what is listed or extracted",
    ),
    opts("-d=", W, "members are extracted there"),
    opts("-:", W, "members may escape the directory with ../"),
    opts("-P=", S, "a password"),
)
_FIND = table(
    HELP,
    opts(
        "-H -L -P -D= -O0 -O1 -O2 -O3 -name= -iname= -path= -ipath= -wholename= -iwholename= -regex= "
        "-iregex= -regextype= -type= -xtype= -size= -empty -newer= -anewer= -cnewer= -mtime= -mmin= "
        "-atime= -amin= -ctime= -cmin= -user= -group= -uid= -gid= -nouser -nogroup -perm= -links= "
        "-inum= -samefile= -lname= -ilname= -readable -writable -executable -maxdepth= -mindepth= "
        "-depth -d -mount -xdev -noleaf -follow -daystart -ignore_readdir_race -noignore_readdir_race "
        "-prune -quit -print -print0 -printf= -ls -true -false -not -and -or -a -o -fstype= -used= "
        "-context= -newerXY= -newermt= -newerct= -newerat=",
        S,
        "which files are matched and printed",
    ),
    opts("-exec -execdir -ok -okdir", H, "runs a command per match: read by the find handler"),
    opts("-delete", H, "removes every match: read by the find handler"),
    opts("-fprint= -fprint0= -fls=", W, "the listing is written to this file"),
    opts("-fprintf=", H, "the listing is written to this file: read by the find handler"),
    opts("-files0-from=", R, "starting points read from a file"),
    single_dash_long=True,
    commands=frozenset({"-exec", "-execdir", "-ok", "-okdir"}),
)
_SED = table(
    HELP,
    opts(
        "-n -r -E -s -u -z --quiet --silent --debug --posix --regexp-extended --separate --unbuffered "
        "--null-data --follow-symlinks -l= --line-length= --sandbox",
        S,
        "how the script is applied",
    ),
    opts("-i? --in-place -c --copy", H, "edits the files in place: read by the sed handler"),
    opts("-e= --expression=", H, "the script: read by the sed handler"),
    opts("-f= --file=", H, "the script from a file: read by the sed handler"),
)
_AWK = table(
    HELP,
    opts(
        "-F= -v= -b -c -C -d? -D? -g -h -L? -M -n -N -o? -O -p? -P -r -s -S -t -V -W= "
        "--field-separator= --assign= --characters-as-bytes --traditional --copyright --dump-variables "
        "--debug --gen-pot --lint --bignum --use-lc-numeric --non-decimal-data --pretty-print "
        "--optimize --profile --posix --re-interval --no-optimize --sandbox --lint-old --version",
        S,
        "how the program runs",
    ),
    opts(
        "-f= --file= -e= --source= -E= --exec= -i= --include= -l= --load=",
        H,
        "the program: read by the awk handler",
    ),
)
_PYTHON = table(
    opts(
        "-b -B -d -E -h -i -I -O -OO -P -q -s -S -u -v -V -x -? -W= -X= --check-hash-based-pycs= "
        "--help --version --help-env --help-xoptions --help-all",
        S,
        "interpreter behaviour",
    ),
    opts("-c=! --command=!", H, "inline code: read by the interpreter handler"),
    opts("-m=!", H, "a module run as the program: read by python_module"),
    stop=1,
)
_NODE = table(
    opts(
        "--check -c -i --interactive --enable-source-maps --no-warnings --no-deprecation "
        "--trace-warnings --trace-deprecation --throw-deprecation --test --watch --expose-gc "
        "--max-old-space-size= --stack-size= --title= --input-type= --conditions= -C= --env-file= "
        "--experimental-vm-modules --experimental-modules "
        "--abort-on-uncaught-exception "
        "--unhandled-rejections= --preserve-symlinks --pending-deprecation --test-reporter= "
        "--test-name-pattern=",
        S,
        "interpreter behaviour",
    ),
    opts("-e=! --eval=! -p=! --print=!", H, "inline code: read by the interpreter handler"),
    opts("-r= --require= --import= --loader= --experimental-loader=", D, "loads code before the program"),
    opts(
        "--inspect? --inspect-brk? --inspect-wait? --inspect-port=",
        D,
        "opens the inspector's port (0.0.0.0:9229 for all): whoever reaches it runs code in the process",
    ),
    stop=1,
)
_XARGS = table(
    HELP,
    opts(
        "-0 --null -d= --delimiter= -E= -e? --eof? -I= -i? --replace? -L= -l? --max-lines? -n= --max-args= "
        "-P= --max-procs= -p --interactive --process-slot-var= -r --no-run-if-empty -s= --max-chars= "
        "--show-limits -t --verbose -x --exit -o --open-tty",
        S,
        "how the argument lists are built (the command is inspected on its own)",
    ),
    opts("-a= --arg-file=", R, "arguments read from a file"),
    stop=0,
)
_ENV = table(
    HELP,
    opts(
        "-i --ignore-environment -0 --null -v --debug --block-signal? --default-signal? --ignore-signal? "
        "--list-signal-handling",
        S,
        "the environment the command gets",
    ),
    opts("-u= --unset=", S, "removes a variable"),
    opts("-C= --chdir=", H, "where the command runs: the shell inspector follows it"),
    opts("-S= --split-string=", H, "the command line: read by the env wrapper"),
    stop=0,
)
_TIME = table(
    HELP,
    opts("-p --portability -v --verbose -q --quiet -a --append -f= --format=", S, "how the time is reported"),
    opts("-o= --output=", W, "the report is written there"),
    stop=0,
)
_NICE = table(HELP, opts("-n= --adjustment=", S, "the priority"), stop=0, numeric=True)
_NOHUP = table(HELP, stop=0)
_TIMEOUT = table(
    HELP,
    opts(
        "-s= --signal= -k= --kill-after= --preserve-status --foreground -v --verbose",
        S,
        "when and how the command is stopped",
    ),
    stop=1,
)
_BASENAME = table(HELP, opts("-a -s= -z --multiple --suffix= --zero", S, FORMAT))
_DIRNAME = table(HELP, opts("-z --zero", S, FORMAT))
_REALPATH = table(
    HELP,
    opts(
        "-e -m -L -P -q -s -z --canonicalize-existing --canonicalize-missing --logical --physical --quiet "
        "--strip --no-symlinks --zero --relative-to= --relative-base=",
        S,
        FORMAT,
    ),
)
_STAT = table(
    HELP, opts("-L -f -t -c= --format= --printf= --dereference --file-system --terse --cached=", S, FORMAT)
)
_DU = table(
    HELP,
    opts(
        "-0 -a -B= -b -c -D -d= -H -h -k -L -l -m -P -S -s -t= -x -X= --null --all --apparent-size "
        "--block-size= --bytes --total --dereference-args --max-depth= --human-readable --inodes "
        "--dereference --count-links --no-dereference --separate-dirs --si --summarize --threshold= "
        "--time --time-style= --exclude-from= --exclude= --one-file-system",
        S,
        FORMAT,
    ),
)
_FILE = table(
    HELP,
    opts(
        "-b -i -L -h -z -Z -k -s -N -E --brief --mime --mime-type --mime-encoding --dereference "
        "--no-dereference --uncompress --special-files",
        S,
        FORMAT,
    ),
)
_SEQ = table(HELP, opts("-f= -s= -w --format= --separator= --equal-width", S, FORMAT))
_SHASUM = table(
    HELP,
    opts(
        "-b -c -t -z --binary --check --tag --text --zero --ignore-missing --quiet --status --strict -w "
        "--warn",
        S,
        FORMAT,
    ),
)
_CHMOD = table(
    HELP,
    opts(
        "-c -f -v -R --changes --silent --quiet --verbose --recursive --no-preserve-root --preserve-root "
        "--reference=",
        S,
        "how modes change",
    ),
    opts("-r -w -x -X -s -t", S, "a mode taken away (chmod -x file)"),
)
_LN = table(
    HELP,
    opts(
        "-b -f -i -L -n -P -r -s -T -v --backup --force --interactive --logical --no-dereference "
        "--physical --relative --symbolic --no-target-directory --verbose -S= --suffix=",
        S,
        "how the link is made (the link is a write)",
    ),
    opts("-t= --target-directory=", H, "the destination: read by the copy handler"),
)
_TEE = table(
    HELP,
    opts(
        "-a -i -p --append --ignore-interrupts --output-error?",
        S,
        "how the copies are written (each operand is a write)",
    ),
)
_PRINTENV = table(HELP, opts("-0 --null", S, FORMAT))
_NL = table(
    HELP,
    opts(
        "-b= -d= -f= -h= -i= -l= -n= -p -s= -v= -w= --body-numbering= --section-delimiter= "
        "--footer-numbering= --header-numbering= --line-increment= --join-blank-lines= --number-format= "
        "--no-renumber --number-separator= --starting-line-number= --number-width=",
        S,
        "how lines are numbered (each operand is read)",
    ),
)
_RMDIR = table(
    HELP,
    opts(
        "-p -v --parents --verbose --ignore-fail-on-non-empty",
        S,
        "which empty directories go (each is a write)",
    ),
)
_UNAME = table(
    HELP,
    opts(
        "-a -s -n -r -v -m -p -i -o --all --kernel-name --nodename --kernel-release --kernel-version "
        "--machine --processor --hardware-platform --operating-system",
        S,
        "which system facts are printed",
    ),
)

CORE: Final[Mapping[str, Table]] = MappingProxyType(
    {
        "ls": _LS,
        "cat": _CAT,
        "head": _HEAD_TAIL,
        "tail": _HEAD_TAIL,
        "grep": _GREP,
        "egrep": _GREP,
        "fgrep": _GREP,
        "rg": _RG,
        "wc": _WC,
        "nl": _NL,
        "rmdir": _RMDIR,
        "uname": _UNAME,
        "sort": _SORT,
        "uniq": _UNIQ,
        "cut": _CUT,
        "tr": _TR,
        "diff": _DIFF,
        "jq": _JQ,
        "tree": _TREE,
        "which": _WHICH,
        "date": _DATE,
        "sleep": _SLEEP,
        "pwd": _PWD,
        "mkdir": _MKDIR,
        "touch": _TOUCH,
        "rm": _RM,
        "cp": _CP,
        "mv": _MV,
        "ln": _LN,
        "tar": _TAR,
        "gzip": _GZIP,
        "gunzip": _GZIP,
        "unzip": _UNZIP,
        "find": _FIND,
        "sed": _SED,
        "awk": _AWK,
        "gawk": _AWK,
        "python": _PYTHON,
        "node": _NODE,
        "xargs": _XARGS,
        "env": _ENV,
        "time": _TIME,
        "nice": _NICE,
        "nohup": _NOHUP,
        "timeout": _TIMEOUT,
        "basename": _BASENAME,
        "dirname": _DIRNAME,
        "realpath": _REALPATH,
        "stat": _STAT,
        "du": _DU,
        "file": _FILE,
        "seq": _SEQ,
        "sha256sum": _SHASUM,
        "sha1sum": _SHASUM,
        "md5sum": _SHASUM,
        "chmod": _CHMOD,
        "tee": _TEE,
        "printenv": _PRINTENV,
    }
)

TABLES: Final[Mapping[str, Table]] = MappingProxyType({**CORE, **DEV, "pip3": DEV["pip"]})

# python -m MODULE: a tool with a table is read with it; a network module is a connection.
_MODULE_TABLES: Final = {
    "pip": "pip",
    "pytest": "pytest",
    "mypy": "mypy",
    "black": "black",
    "isort": "isort",
    "ruff": "ruff",
    "tox": "tox",
}
_NET_CLIENT_MODULES: Final = frozenset(
    {
        "telnetlib",
        "ftplib",
        "smtplib",
        "poplib",
        "imaplib",
        "nntplib",
        "http.client",
        "urllib.request",
        "xmlrpc.client",
        "webbrowser",
        "socket",
        # third-party command lines that fetch or talk to the URL they are given
        "websockets",
        "wget",
        "yt_dlp",
        "gdown",
        "httpie",
    }
)
_NET_SERVER_MODULES: Final = frozenset(
    {
        "http.server",
        "SimpleHTTPServer",
        "CGIHTTPServer",
        "smtpd",
        "xmlrpc.server",
        "wsgiref.simple_server",
        "pydoc",
        "aiosmtpd",
        "uvicorn",
        "flask",
        "gunicorn",
        # third-party servers: web, file upload and FTP/WebDAV servers, notebooks, app frameworks
        "hypercorn",
        "waitress",
        "daphne",
        "sanic",
        "bottle",
        "aiohttp.web",
        "fastapi",
        "streamlit",
        "gradio",
        "panel",
        "voila",
        "notebook",
        "jupyterlab",
        "jupyter_server",
        "pyftpdlib",
        "uploadserver",
        "updog",
        "wsgidav",
        "RangeHTTPServer",
        "twisted",
        "proxy",
        "pproxy",
        "mitmproxy",
    }
)
# A server module's options that print, or write its configuration, and exit: nothing listens.
_PRINTS_AND_EXITS: Final = frozenset({"-h", "--help", "--version", "-V", "--generate-config", "--help-all"})
# python -m jupyter SUB runs jupyter-SUB: these serve notebooks to whoever reaches the port.
_JUPYTER_SERVERS: Final = frozenset({"lab", "notebook", "server", "nbclassic", "kernelgateway"})
# python -m MODULE whose command line is a tunnel, a proxy relay or network attack tooling, beyond
# the programs of the same name (shell_programs.TABLE_CAPS: sshuttle, xmrig, nmap...).
_MODULE_CAPS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "twisted": ("net.tunnel",),  # twistd plugins: portforward, socks, conch (an SSH server)
        "proxy": ("net.tunnel",),  # proxy.py: an HTTP(S) proxy others relay through
        "pproxy": ("net.tunnel",),
        "mitmproxy": ("net.tunnel",),
        "scapy": ("net.scan",),  # packets crafted by hand: sweeps, spoofing
        "impacket": ("net.scan",),  # SMB/RPC tooling: remote execution, credential dumping
        "pwn": ("net.scan",),
    }
)
_ASSIGN_WORD: Final = re.compile(r"([A-Za-z_.][A-Za-z0-9_.]*)\+?[:?!]?=")


def check_program(insp: Inspection, fam: str, name: str, args: list[Word], depth: int) -> None:
    """Read one command against its program's table, plus what a table alone cannot say."""
    spec = TABLES.get(fam)
    if spec is None:
        return
    walk(insp, spec, fam, name, args, depth)
    if fam in ("npm", "pnpm", "yarn"):
        settings = config_settings(args)
        if settings:  # npm config set script-shell ./x.sh: the option, for every later run
            walk(insp, spec, fam, f"{name} config set", settings, depth)
        package_scripts(insp, fam, name, args, depth)
    if fam in ("make", "gmake"):
        for w in args:
            m = _ASSIGN_WORD.match(w.text) if not w.text.startswith("-") else None
            if m is not None:
                make_variable(insp, name, m.group(1), w, w.text[m.end() :], depth)
    elif fam == "python":
        python_module(insp, name, args, depth)
    elif fam in ("go", "cargo"):
        for program in sorted(built_programs(insp, fam, args)):
            for cap in program_capabilities(program):
                insp.add(cap, f"{name} {' '.join(w.text for w in args)}: builds and runs {program}")
    elif fam == "jq":
        from gatekeeper.inspectors.shell_code import jq  # it imports this module

        jq(insp, name, args)


def program_capabilities(program: str) -> tuple[str, ...]:
    """The network and mining capabilities of a program known only by a name it was given (a
    package's bin, a crate, a Go package, a project directory): ``bore``, ``xmrig``, ``nmap``. Not
    the table's other classes: a project named ``at`` or ``su`` is not the scheduler or sudo."""
    return tuple(c for c in TABLE_CAPS.get(program, ()) if c.startswith(("net.", "crypto.")))


# go run's build flags that take a value (the package is the first operand after them).
_GO_VALUES: Final = frozenset(
    "-C -o -p -tags -ldflags -gcflags -asmflags -mod -modfile -overlay -pkgdir -toolexec -exec "
    "-buildmode -compiler -coverpkg -covermode -installsuffix -pgo -gccgoflags".split()
)


def built_programs(insp: Inspection, fam: str, args: list[Word]) -> set[str]:
    """The program a build tool builds and runs, by name: ``go run ./cmd/chisel`` and ``go run
    github.com/x/chisel@v1`` run chisel, ``cargo run --bin bore`` bore; ``go run .`` and ``cargo
    run`` the crate or module of the working directory (a clone of chisel is chisel)."""
    texts = [w.text for w in args]
    if "run" not in texts[:2]:
        return set()
    rest = args[texts.index("run") + 1 :]
    names: set[str] = set()
    here = False
    if fam == "cargo":
        for flag in ("--bin", "--example", "-p", "--package"):
            names.update(w.text.lower() for w in option_values(rest, (flag,)))
        here = not names
    else:
        i = 0
        while i < len(rest) and rest[i].text.startswith("-") and rest[i].text != "--":
            i += 2 if rest[i].text in _GO_VALUES else 1
        if i < len(rest) and not rest[i].text.endswith(".go"):
            package = rest[i].text.split("@", 1)[0].rstrip("/")
            here = package in (".", "")
            if not here:
                names.add(posixpath.basename(package).lower())
    if here:
        names.update(posixpath.basename(c.rstrip("/")).lower() for c in insp.cwds if c)
    return names


# npm configuration keys that change nothing a gate decides (how output looks, what is saved where
# in package.json): set in .npmrc or by npm config set, they are not doubt.
NPM_PLAIN_KEYS: Final = frozenset(
    "fund audit engine-strict package-lock save save-exact save-prefix save-dev legacy-peer-deps "
    "strict-peer-deps progress loglevel color unicode update-notifier init-author-name "
    "init-author-email init-author-url init-license init-version lockfile-version prefer-offline "
    "prefer-online auto-install-peers shamefully-hoist strict-ssl-false node-linker".split()
)


# Verbs that run a package's bin by its name (yarn run falls back to node_modules/.bin).
_BIN_VERBS: Final[Mapping[str, frozenset[str]]] = MappingProxyType(
    {"yarn": frozenset({"exec", "run", "run-script"}), "pnpm": frozenset({"exec"}), "npm": frozenset()}
)


def package_scripts(insp: Inspection, fam: str, name: str, args: list[Word], depth: int) -> None:
    """``npm pkg set scripts.test='CMD'`` writes a command line every later ``npm test`` runs: read
    it now. ``yarn run lt``, ``pnpm exec lt``: a package's program by its name (the table's)."""
    operands = [w for w in args if not w.text.startswith("-")]
    verbs = [w.text for w in operands[:2]]
    if fam in ("npm", "pnpm") and verbs == ["pkg", "set"]:
        for w in operands[2:]:
            key, eq, value = w.text.partition("=")
            if eq and key.startswith("scripts."):
                if not w.literal:
                    insp.opaque(f"{name} pkg set {key}: a script not known statically")
                elif value.strip():
                    insp.source(value, depth + 1)
    elif verbs and verbs[0] in _BIN_VERBS[fam] and len(operands) > 1:
        program = posixpath.basename(operands[1].text).lower()
        for cap in program_capabilities(program):
            insp.add(cap, f"{name} {' '.join(w.text for w in args)}: runs the package program {program}")


def config_settings(args: list[Word]) -> list[Word]:
    """``npm config set k v``, ``npm set k=v``, ``yarn config set k v``: the settings as the
    options ``--k=v`` they become for every later run (plain keys left out)."""
    texts = [w.text for w in args]
    start = 2 if texts[:2] == ["config", "set"] else 1 if texts[:1] == ["set"] else 0
    if not start:
        return []
    operands = [w for w in args[start:] if not w.text.startswith("-")]
    out: list[Word] = []
    i = 0
    while i < len(operands):
        w = operands[i]
        key, eq, value = w.text.partition("=")
        if not eq:
            if i + 1 >= len(operands):
                break  # a key with no value sets nothing
            value = operands[i + 1].text
            i += 1
        literal = w.literal and (eq or i >= len(operands) or operands[i].literal)
        if key not in NPM_PLAIN_KEYS:
            out.append(Word(f"--{key}={value}", bool(literal)))
        i += 1
    return out


def make_variable(insp: Inspection, name: str, var: str, w: Word, value: str, depth: int) -> None:
    """``make CC=...``: a variable recipes may run. Programs are read as commands, data passes, else doubt."""
    effect = MAKE_VARIABLES.get(var, Effect.DOUBT)
    reason = f"make variable {var}: recipes use it"
    if var in COMPILER_FLAG_VARS:
        compiler_flags(insp, f"{name} {var}", value, w.literal)
    elif effect is Effect.EXEC:
        if not w.literal:
            insp.opaque(f"{name} {w.text}: a command not known statically")
        elif value.strip():
            insp.source(value, depth + 1)  # the program it names runs, and is inspected as such
    elif effect is not Effect.SAFE:
        apply(insp, "make", name, var + "=", Opt(effect, True, reason), Word(value, w.literal), depth)


def make_words(insp: Inspection, name: str, value: str, literal: bool, depth: int) -> None:
    """``MAKEFLAGS='-j4 CC=x'``: make's own options and variables, read as if given to make."""
    if not literal:
        insp.opaque(f"{name} not known statically")
        return
    try:
        words = shlex.split(value)
    except ValueError:
        insp.opaque(f"{name} not understood: {value}")
        return
    if words and not words[0].startswith("-") and "=" not in words[0]:
        words[0] = "-" + words[0]  # MAKEFLAGS=k: single-letter flags without their dash
    check_program(insp, "make", name, [Word(t) for t in words], depth)


# python -m MODULE for modules that run a script or a module named in their own arguments: the
# options that take a value, the flags after which the operand is a module, and the subcommand
# that runs (coverage run). Such a command is read as ``python SCRIPT ...`` / ``python -m MOD ...``.
_RUNNER_MODULES: Final[Mapping[str, tuple[frozenset[str], frozenset[str], str | None]]] = {
    "pdb": (frozenset({"-c", "--command"}), frozenset({"-m"}), None),
    "cProfile": (frozenset({"-o", "--outfile", "-s", "--sort"}), frozenset({"-m"}), None),
    "profile": (frozenset({"-o", "--outfile", "-s", "--sort"}), frozenset({"-m"}), None),
    "trace": (
        frozenset({"-f", "--file", "-C", "--coverdir", "--ignore-module", "--ignore-dir"}),
        frozenset({"--module"}),
        None,
    ),
    "coverage": (
        frozenset(
            {
                "--rcfile",
                "--source",
                "--include",
                "--omit",
                "--context",
                "--concurrency",
                "--data-file",
                "--debug",
            }
        ),
        frozenset({"-m", "--module"}),
        "run",
    ),
    "runpy": (frozenset(), frozenset(), None),  # its operand is always a module
    "IPython": (frozenset({"--profile", "--ipython-dir", "--config", "--log-level"}), frozenset(), None),
}
_TIMEIT_VALUES: Final = frozenset({"-n", "--number", "-r", "--repeat", "-u", "--unit"})


def runner_module_argvs(module: str, args: list[Word]) -> list[list[Word]]:
    """``python -m cProfile -o out x.py A`` -> ``x.py A``; ``python -m runpy m`` -> ``-m m``;
    ``python -m timeit -s S T`` -> ``-c 'S\nT'``; pdb's ``-c`` commands are Python statements
    (``-c CMD``). Nothing: the module runs nothing named here."""
    if module == "timeit":
        return [_timeit_code(args)]
    spec = _RUNNER_MODULES.get(module)
    if spec is None:
        return []
    values, module_flags, subcommand = spec
    out: list[list[Word]] = []
    i, as_module = 0, module == "runpy"
    if subcommand is not None:
        if not args or args[0].text != subcommand:
            return []
        i = 1
    while i < len(args):
        t = args[i].text
        if t == "--":
            i += 1
            break
        if t in module_flags:
            as_module = True
        elif module == "IPython" and t in ("-c", "-m"):
            return [args[i:]]  # as python's own -c and -m
        elif module == "pdb" and t in ("-c", "--command") and i + 1 < len(args):
            command = args[i + 1]
            out.append([Word("-c"), Word(command.text.removeprefix("!"), command.literal)])
        elif not t.startswith("-") or t == "-":
            break
        i += 2 if t in values else 1
    if i < len(args):
        out.append([Word("-m"), *args[i:]] if as_module else args[i:])
    return out


def _timeit_code(args: list[Word]) -> list[Word]:
    """timeit's setup (``-s``) and statements are Python code, run as ``python -c`` would."""
    code: list[Word] = []
    i = 0
    while i < len(args):
        w, t = args[i], args[i].text
        if t in ("-s", "--setup") and i + 1 < len(args):
            code.append(args[i + 1])
            i += 2
            continue
        if t.startswith(("--setup=", "-s")) and t not in ("-s", "--setup"):
            code.append(Word(t.split("=", 1)[1] if t.startswith("--setup=") else t[2:], w.literal))
        elif t in _TIMEIT_VALUES:
            i += 1
        elif t == "--":
            code += args[i + 1 :]
            break
        elif not t.startswith("-"):
            code.append(w)
        i += 1
    text = "\n".join(w.text for w in code) or "pass"
    return [Word("-c"), Word(text, all(w.literal for w in code))]


# Django management (manage.py, django-admin, python -m django): global options with a value,
# and the subcommands that run code or serve. Every subcommand imports the project's modules
# (settings, apps, migrations), which shell_runs counts as run.
_DJANGO_VALUES: Final = frozenset({"--settings", "--pythonpath", "-v", "--verbosity"})
_DJANGO_SHELLS: Final = frozenset({"shell", "shell_plus"})
_DJANGO_SERVERS: Final = frozenset({"runserver", "runserver_plus", "testserver", "runsslserver"})
_LOOPBACK_NAMES: Final = frozenset({"127.0.0.1", "localhost", "::1", "[::1]", ""})


def django_command(insp: Inspection, name: str, args: list[Word], depth: int) -> None:
    """``manage.py shell -c CODE`` runs Python (read as ``python -c``); ``shell`` alone runs what
    it reads on stdin and ``dbshell`` hands stdin to a database client (sqlite3's ``.shell``,
    psql's ``\\!``): doubt. ``runserver`` on an address other than loopback listens for others."""
    i = 0
    while i < len(args) and args[i].text.startswith("-"):
        i += 2 if args[i].text in _DJANGO_VALUES else 1
    # --pythonpath DIR: the project's modules (settings, apps) are imported from DIR too
    where = _option_value(args, ("--pythonpath",))
    if where is not None:
        if not where.literal:
            insp.opaque(f"{name} --pythonpath not known statically: {where.text}")
        else:
            python_path(insp, [where.text])
    if i >= len(args):
        return
    sub, rest = args[i], args[i + 1 :]
    evidence = f"{name} {sub.text}"
    if not sub.literal:
        insp.opaque(f"{evidence}: a management command not known statically")
    elif sub.text in _DJANGO_SHELLS:
        code = _option_value(rest, ("-c", "--command"))
        if code is None:
            insp.add(f"proc.inline_code:{name}", f"{evidence}: runs the Python it reads on stdin")
        else:
            insp.run([Word("python3"), Word("-c"), code], depth + 1)
    elif sub.text == "dbshell":
        insp.add(f"proc.inline_code:{name}", f"{evidence}: a database client runs what it is given")
    elif sub.text == "sendtestemail":  # to the SMTP server the settings name: not in the command
        insp.opaque(f"{evidence}: sends mail through the mail server the settings name")
    elif sub.text == "dumpdata":
        out = _option_value(rest, ("-o", "--output"))
        if out is not None:
            insp.write_target(out, f"{evidence} --output {out.text}")
    elif sub.text in _DJANGO_SERVERS:
        if sub.text == "testserver":
            addr = _option_value(rest, ("--addrport",))
        else:
            addr = next(iter(_django_operands(rest)), None)
        if addr is not None and (not addr.literal or _listen_host(addr.text) not in _LOOPBACK_NAMES):
            insp.add("net.listen", f"{evidence} {addr.text}: starts a server others can reach")


def _django_operands(args: list[Word]) -> list[Word]:
    """The operands of a management command: not options, nor the values of the common options
    that take one (``runserver -v 3 0.0.0.0:8000`` listens on 0.0.0.0, not on port 3)."""
    out: list[Word] = []
    skip = False
    for w in args:
        if skip:
            skip = False
        elif w.text in _DJANGO_VALUES:
            skip = True
        elif not w.text.startswith("-"):
            out.append(w)
    return out


def _listen_host(addrport: str) -> str:
    """``8000`` -> "" (the default, loopback), ``0.0.0.0:8000`` -> ``0.0.0.0``, ``[::1]:80`` -> ``[::1]``."""
    if addrport.isdigit():
        return ""
    if addrport.startswith("["):
        return addrport[: addrport.find("]") + 1]
    host, sep, _ = addrport.rpartition(":")
    return host if sep else addrport


def _option_value(args: list[Word], names: tuple[str, ...]) -> Word | None:
    """The first value given to ``names`` (``-c X``, ``-cX``, ``--command=X``), if any."""
    return next(iter(option_values(args, names)), None)


def django_admin(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    django_command(insp, name, args, depth)
    return set()


# Standard-library modules whose command line writes files: python -m tarfile -e a.tar DIR
# extracts into DIR (.git/hooks), -c OUT creates OUT; gzip -d x.gz writes x; profile -o OUT.
_STDLIB_WRITERS: Final = frozenset({"tarfile", "zipfile", "gzip", "profile", "cProfile"})


def _stdlib_writes(insp: Inspection, evidence: str, module: str, args: list[Word]) -> None:
    texts = [w.text for w in args]
    if module in ("tarfile", "zipfile"):
        for flag in ("-e", "--extract"):
            if flag in texts:
                after = args[texts.index(flag) + 1 :]
                dest = after[1] if len(after) > 1 else Word(".")
                insp.write_target(dest, f"{evidence} {flag} ... {dest.text}", under=True)
        for flag in ("-c", "--create"):
            if flag in texts and texts.index(flag) + 1 < len(args):
                insp.write_target(args[texts.index(flag) + 1], f"{evidence} {flag}")
    elif module == "gzip":
        if "-d" in texts or "--decompress" in texts:
            for w in args:
                if not w.text.startswith("-"):
                    insp.write_target(Word(w.text.removesuffix(".gz"), w.literal), f"{evidence} -d {w.text}")
    else:
        out = _option_value(args, ("-o", "--outfile"))
        if out is not None:
            insp.write_target(out, f"{evidence} -o {out.text}")


# Importing a module is not running its command line: only tunnels and miners are theirs when
# imported (import sshuttle.cmdline; ....main()); ``xray`` is also xarray's old name.
_IMPORTED_CAPS: Final = ("net.tunnel", "crypto.mine")
_IMPORT_NAME_CLASHES: Final = frozenset({"xray"})


def module_capabilities(module: str, *, imported: bool = False) -> list[str]:
    """What running (``python -m``) or, with ``imported``, importing ``module`` is, by the program
    table (shell_programs.TABLE_CAPS: its console script's name) and the module table."""
    top = module.split(".", 1)[0]
    names = {top, top.lower(), top.lower().replace("_", "-")}
    caps = {c for n in names for c in TABLE_CAPS.get(n, ())}
    if imported:
        return [] if top in _IMPORT_NAME_CLASHES else sorted(c for c in caps if c.startswith(_IMPORTED_CAPS))
    return sorted(caps | set(_MODULE_CAPS.get(top, ())))


def _module_program(insp: Inspection, module: str, rest: list[Word], evidence: str) -> None:
    """``python -m sshuttle``, ``python -m xmrig``: a module is the program of its name (its console
    script), with that program's capabilities; servers and tunnels known only as modules too."""
    top = module.split(".", 1)[0]
    for cap in module_capabilities(module):
        insp.add(cap, f"{evidence}: the module is the program {top}")
    operands = [w for w in rest if not w.text.startswith("-")]
    if (
        top == "jupyter"
        and operands
        and operands[0].text in _JUPYTER_SERVERS
        and not any(w.text in _PRINTS_AND_EXITS for w in rest)
    ):
        insp.add("net.listen", f"{evidence}: serves notebooks to whoever reaches the port")


def python_module(insp: Inspection, name: str, args: list[Word], depth: int) -> None:
    """``python -m MOD ARGS``: pip and friends read with their own tables; network modules connect;
    modules that run another script or module (pdb, cProfile, coverage run, timeit...) are read as
    ``python`` running it."""
    skip = False
    module: str | None = None
    for i, w in enumerate(args):
        t = w.text
        if skip:
            skip = False
            continue
        if not t.startswith("-") or t in ("-", "--"):  # a script: its arguments are its own
            if posixpath.basename(t) == "manage.py":  # Django's: its subcommands are read
                django_command(insp, f"{name} {t}", args[i + 1 :], depth)
            return
        if t.startswith("--"):
            continue
        # a cluster of short flags, as python reads it: -Im X, -Bmpproxy, -Wignore, -Ic CODE
        letters = t[1:]
        for k, ch in enumerate(letters):
            if ch in "WX":  # its value is the rest of the word, or the next word
                skip = k == len(letters) - 1
                break
            if ch == "c":
                return
            if ch == "m":
                attached = letters[k + 1 :]
                module = attached or (args[i + 1].text if i + 1 < len(args) else "")
                rest = args[i + 1 :] if attached else args[i + 2 :]
                break
        if module is not None:
            break
    if module is None:
        return
    if module == "django":
        django_command(insp, f"{name} -m django", list(rest), depth)
        return
    top = module.split(".", 1)[0]
    if module in _STDLIB_WRITERS:
        _stdlib_writes(insp, f"{name} -m {module}", module, list(rest))
    evidence = f"{name} -m {module} {' '.join(w.text for w in rest)}"
    runs = runner_module_argvs(module, list(rest))
    for argv in runs:
        insp.run([Word(name), *argv], depth + 1)
    if runs:
        return
    tool = _MODULE_TABLES.get(module)
    if tool is not None:
        from gatekeeper.inspectors.shell_code import HANDLERS  # it imports this module

        walk(insp, TABLES[tool], tool, f"{name} -m {module}", list(rest), depth)
        handler = HANDLERS.get(tool)  # the options the table leaves to the tool's handler
        if handler is not None:
            handler(insp, f"{name} -m {module}", list(rest), depth)
        return
    operands = [w for w in rest if not w.text.startswith("-")]
    _module_program(insp, module, list(rest), evidence)
    if (
        (module in _NET_SERVER_MODULES or top in _NET_SERVER_MODULES)
        and (module != "pydoc" or any(w.text in ("-p", "-b", "-n") for w in rest))
        and not any(w.text in _PRINTS_AND_EXITS for w in rest)
    ):
        insp.add("net.listen", f"{evidence}: starts a server others can reach")
    if module in _NET_CLIENT_MODULES:
        if operands and operands[0].literal and module != "socket":
            port = operands[1].text if len(operands) > 1 and operands[1].text.isdigit() else None
            host = operands[0].text
            if "://" in host:
                insp.scan([operands[0]])
            elif port is not None:
                insp.connect(host, port, evidence)
            else:
                insp.host_class(host, evidence)
                insp.opaque(f"{evidence}: a network module with a destination not understood")
        else:
            insp.opaque(f"{evidence}: a network module with a destination not known statically")
