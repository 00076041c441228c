"""Slipway's environment builder: one ProjectEnvironment build, run as a Job's container in the environment's own
base image (so wheels are chosen for that image's Python and platform), with this directory mounted read-only
from the builder image (an image volume): this script and pip, as a wheel.

1. Resolve: `pip install --dry-run --report` against the package index gives every package, its exact version
   and the sha256 of the wheel chosen: the lock. Nothing is built from source (wheels only).
2. Reuse: an image already pushed for this content hash (tag = the hash) is reported as it is.
3. Install: the locked wheels, `--require-hashes`, into a staging root, with SOURCE_DATE_EPOCH=0 so that
   bytecode and the layer's bytes do not depend on when the build ran.
4. Layer: one gzipped tar of the staging root (sorted, owner 0, mtime 0, no gzip name or time).
5. Push: the base image's layers (mounted across repositories of one registry, copied otherwise), the new layer,
   the config (base config + diff_id + history + labels with the hash and the lock), the manifest under the tag,
   and an SPDX SBOM as an OCI artifact whose subject is the image.
6. Report: a JSON line in the termination-message file, which the controller reads from the pod's status:
   {"image": "repo@sha256:...", "sbom": "sha256:...", "lock": "name==version ... deb:name==version ...", "python": "3.11.2"}
   (a lock too long for the message's 4096 bytes goes as "lockGz", gzipped and base64-encoded).
   A failure writes {"reason": ..., "message": ...} instead and exits 2 when retrying cannot help (the packages
   cannot be resolved), 1 otherwise (the Job retries with its back-off).

Debian packages (apt: [...]) and R packages (r: [...], CRAN's as the distribution builds them) are resolved
against the base's own Debian release and unpacked into the same layer first (see the section below).

Input: SLIPWAY_BUILD, a JSON object: {"hash", "baseImage", "repository", "pip": [...], "apt": [...], "r": [...]}. Registry credentials, when
the registry needs them, come from a kubernetes.io/dockerconfigjson Secret mounted at SLIPWAY_PUSH_SECRET_DIR.
Standard library only: the base image needs nothing but Python.
"""

import base64
import functools
import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
PIP = os.path.join(HERE, 'pip.whl', 'pip')
WORK = os.environ.get('SLIPWAY_WORK', '/work')
TERMINATION = os.environ.get('SLIPWAY_TERMINATION_LOG', '/dev/termination-log')
SECRET_DIR = os.environ.get('SLIPWAY_PUSH_SECRET_DIR', '/var/run/slipway/push')
# The layout version of what this builder writes: part of every environment's content hash (the controller's).
FORMAT = '1'

OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
OCI_INDEX = 'application/vnd.oci.image.index.v1+json'
DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json'
DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json'
OCI_CONFIG = 'application/vnd.oci.image.config.v1+json'
OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip'
LAYER_TYPES = {OCI_LAYER: OCI_LAYER, 'application/vnd.docker.image.rootfs.diff.tar.gzip': OCI_LAYER,
               'application/vnd.oci.image.layer.v1.tar': 'application/vnd.oci.image.layer.v1.tar'}
EMPTY = b'{}'
EMPTY_TYPE = 'application/vnd.oci.empty.v1+json'
SPDX_TYPE = 'application/spdx+json'
LABEL_HASH = 'dev.slipway.environment.hash'
LABEL_LOCK = 'dev.slipway.environment.lock'


class BuildError(Exception):
    def __init__(self, reason, message, permanent=False):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.permanent = permanent


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def report(obj):
    text = json.dumps(obj, separators=(',', ':'))
    if len(text.encode()) > 4096 and obj.get('lock'):
        # A long lock (a few hundred packages) travels gzipped and base64-encoded.
        packed = dict(obj)
        packed['lockGz'] = base64.b64encode(gzip.compress(packed.pop('lock').encode(), mtime=0)).decode()
        text = json.dumps(packed, separators=(',', ':'))
    if len(text.encode()) > 4096:
        raise BuildError('ReportTooLarge', f'the build report is {len(text.encode())} bytes even with its lock compressed; a termination message holds 4096', True)
    with open(TERMINATION, 'w') as f:
        f.write(text)


def digest_of(data):
    return 'sha256:' + hashlib.sha256(data).hexdigest()


def tail(text, lines=15):
    return '\n'.join(text.strip().splitlines()[-lines:])


# ---------------------------------------------------------------- resolution


def pip(args, **kw):
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK='1', PIP_NO_INPUT='1', PIP_CACHE_DIR=os.path.join(WORK, 'pip-cache'),
               PIP_ROOT_USER_ACTION='ignore', SOURCE_DATE_EPOCH='0', PYTHONDONTWRITEBYTECODE='1')
    if 'PIP_CERT' not in env:
        for ca in ('/etc/ssl/certs/ca-certificates.crt',):
            if os.path.exists(ca):
                env['PIP_CERT'] = ca
    return subprocess.run([sys.executable, PIP, *args], env=env, capture_output=True, text=True, **kw)


NETWORK = re.compile(r'ConnectionError|ProxyError|SSLError|Max retries exceeded|Temporary failure in name resolution|'
                     r'Name or service not known|timed out|Connection refused|Network is unreachable|403 Forbidden')


def resolve(requirements):
    """The lock: [{name, version, sha256, url}] for the requirements, on this image's Python and platform."""
    req = os.path.join(WORK, 'requirements.in')
    with open(req, 'w') as f:
        f.write('\n'.join(requirements) + '\n')
    out = os.path.join(WORK, 'report.json')
    r = pip(['install', '--dry-run', '--ignore-installed', '--only-binary=:all:', '--quiet', '--report', out, '-r', req])
    if r.returncode != 0:
        err = r.stderr + r.stdout
        if NETWORK.search(err):
            raise BuildError('PackageIndexUnreachable', 'pip could not reach the package index: ' + tail(err, 6))
        raise BuildError('ResolutionFailed', tail(err, 12), True)
    with open(out) as f:
        installs = json.load(f).get('install', [])
    lock = []
    for item in installs:
        meta = item['metadata']
        info = item.get('download_info', {})
        hashes = info.get('archive_info', {}).get('hashes', {})
        sha = hashes.get('sha256') or (info.get('archive_info', {}).get('hash', '').partition('sha256=')[2])
        if not sha:
            raise BuildError('ResolutionFailed', f"{meta['name']} {meta['version']}: the index gave no sha256 for {info.get('url', '?')}", True)
        lock.append({'name': canonical(meta['name']), 'version': meta['version'], 'sha256': sha, 'url': info.get('url', '')})
    lock.sort(key=lambda p: p['name'])
    return lock


def canonical(name):
    return re.sub(r'[-_.]+', '-', name).lower()


def install(lock, stage):
    locked = os.path.join(WORK, 'requirements.lock')
    with open(locked, 'w') as f:
        for p in lock:
            f.write(f"{p['name']}=={p['version']} --hash=sha256:{p['sha256']}\n")
    r = pip(['install', '--no-deps', '--require-hashes', '--only-binary=:all:', '--ignore-installed', '--no-warn-script-location',
             '--root', stage, '-r', locked])
    if r.returncode != 0:
        err = r.stderr + r.stdout
        if NETWORK.search(err):
            raise BuildError('PackageIndexUnreachable', 'pip could not download the locked wheels: ' + tail(err, 6))
        raise BuildError('InstallFailed', tail(err, 12), True)


def layer_of(stage):
    """A gzipped tar of the staging root: sorted, owned by root, mtime 0; and the uncompressed tar's digest."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode='w', format=tarfile.PAX_FORMAT) as t:
        paths = []
        for d, dirs, files in os.walk(stage):
            dirs.sort()
            for n in dirs + sorted(files):
                paths.append(os.path.join(d, n))
        for p in sorted(paths, key=lambda p: os.path.relpath(p, stage)):
            info = t.gettarinfo(p, arcname=os.path.relpath(p, stage))
            info.uid = info.gid = 0
            info.uname = info.gname = ''
            info.mtime = 0
            info.pax_headers = {}
            if info.isdir():
                info.mode = 0o755
            elif info.isreg():
                info.mode = 0o755 if info.mode & 0o111 else 0o644
            if info.isreg():
                with open(p, 'rb') as f:
                    t.addfile(info, f)
            else:
                t.addfile(info)
    tar = raw.getvalue()
    gz = io.BytesIO()
    with gzip.GzipFile(filename='', mode='wb', fileobj=gz, mtime=0, compresslevel=6) as z:
        z.write(tar)
    return gz.getvalue(), digest_of(tar)


# ---------------------------------------------------------------- Debian packages (apt and R)
#
# Debian packages of the base's own distribution (its /etc/os-release codename), from the archive's Packages
# indexes (main, -updates, -security), resolved against what the base has installed (its dpkg status): the
# requested packages and every dependency the base lacks, each at the archive's newest version. The .debs are
# checked against the index's sha256 and unpacked (no maintainer scripts: nothing runs as root) into the layer,
# /usr merged as the base is, with dpkg's status extended. R packages are CRAN's as Debian builds them
# (r-cran-<name>): the distribution's release is the CRAN snapshot.

APT_MIRROR = os.environ.get('SLIPWAY_APT_MIRROR', 'https://deb.debian.org').rstrip('/')
MERGED = (('lib/', 'usr/lib/'), ('lib64/', 'usr/lib64/'), ('bin/', 'usr/bin/'), ('sbin/', 'usr/sbin/'))
DROPPED = re.compile(r'^usr/share/(doc|man|info|locale|lintian|bug)(/|$)')


def _order(c):
    if c == '~':
        return -1
    if c.isalpha():
        return ord(c)
    return ord(c) + 256


def _cmp_part(a, b):
    """dpkg's comparison of an upstream version or a revision: non-digits by their order (~ first), digits as numbers."""
    while a or b:
        i = 0
        while i < len(a) and not a[i].isdigit():
            i += 1
        j = 0
        while j < len(b) and not b[j].isdigit():
            j += 1
        sa, sb = a[:i], b[:j]
        for k in range(max(len(sa), len(sb))):
            ca = _order(sa[k]) if k < len(sa) else 0
            cb = _order(sb[k]) if k < len(sb) else 0
            if ca != cb:
                return -1 if ca < cb else 1
        a, b = a[i:], b[j:]
        i = 0
        while i < len(a) and a[i].isdigit():
            i += 1
        j = 0
        while j < len(b) and b[j].isdigit():
            j += 1
        na, nb = int(a[:i] or 0), int(b[:j] or 0)
        if na != nb:
            return -1 if na < nb else 1
        a, b = a[i:], b[j:]
    return 0


def vercmp(a, b):
    def split(v):
        epoch, rest = v.split(':', 1) if ':' in v else ('0', v)
        upstream, _, revision = rest.rpartition('-') if '-' in rest else (rest, '', '0')
        return int(epoch or 0), upstream, revision
    ea, ua, ra = split(a)
    eb, ub, rb = split(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _cmp_part(ua, ub) or _cmp_part(ra, rb)


def satisfies(version, op, wanted):
    c = vercmp(version, wanted)
    return {'<<': c < 0, '<=': c <= 0, '=': c == 0, '>=': c >= 0, '>>': c > 0}[op]


def parse_deps(text):
    """`a (>= 1) | b, c:any` -> [[('a', '>=', '1'), ('b', None, None)], [('c', None, None)]]"""
    groups = []
    for group in filter(None, (g.strip() for g in (text or '').split(','))):
        alts = []
        for alt in group.split('|'):
            m = re.match(r'\s*([a-z0-9][a-z0-9+.-]*)(?::[a-z0-9-]+)?\s*(?:\(\s*(<<|<=|=|>=|>>)\s*([^)\s]+)\s*\))?', alt)
            if m:
                alts.append((m.group(1), m.group(2), m.group(3)))
        if alts:
            groups.append(alts)
    return groups


STANZA_FIELDS = ('Package', 'Version', 'Provides', 'Depends', 'Pre-Depends', 'Filename', 'SHA256', 'Architecture')


def parse_stanzas(text):
    out = []
    for block in text.split('\n\n'):
        entry = {}
        key = None
        for line in block.split('\n'):
            if line[:1] in (' ', '\t'):
                if key in entry:
                    entry[key] += ' ' + line.strip()
                continue
            key, _, value = line.partition(':')
            if key in STANZA_FIELDS:
                entry[key] = value.strip()
        if entry.get('Package'):
            out.append(entry)
    return out


def os_codename():
    for path in ('/etc/os-release', '/usr/lib/os-release'):
        if os.path.exists(path):
            with open(path) as f:
                values = dict(line.rstrip('\n').split('=', 1) for line in f if '=' in line)
            codename = values.get('VERSION_CODENAME', '').strip('"')
            if values.get('ID', '').strip('"') == 'debian' and codename:
                return codename
    raise BuildError('BaseImageUnsupported', 'apt and R packages need a Debian base image (/etc/os-release with ID=debian and VERSION_CODENAME)', True)


def fetch(url):
    try:
        with urllib.request.urlopen(url, timeout=300) as res:
            return res.read()
    except urllib.error.HTTPError as e:
        raise BuildError('PackageIndexError', f'GET {url}: {e.code} {e.reason}')
    except (urllib.error.URLError, OSError) as e:
        raise BuildError('PackageIndexUnreachable', f'GET {url}: {getattr(e, "reason", e)}')


def apt_index(codename):
    import lzma
    suites = [('debian', codename), ('debian', f'{codename}-updates'), ('debian-security', f'{codename}-security')]
    index = {}
    for archive, suite in suites:
        url = f'{APT_MIRROR}/{archive}/dists/{suite}/main/binary-amd64/Packages.xz'
        for e in parse_stanzas(lzma.decompress(fetch(url)).decode('utf-8', 'replace')):
            e['url'] = f"{APT_MIRROR}/{archive}/{e['Filename']}"
            index.setdefault(e['Package'], []).append(e)
    newest_first = functools.cmp_to_key(lambda a, b: vercmp(b['Version'], a['Version']))
    for name in index:
        index[name].sort(key=newest_first)
    return index, [s for _, s in suites]


def installed_packages():
    try:
        with open('/var/lib/dpkg/status') as f:
            return {e['Package']: e for e in parse_stanzas(f.read())}
    except FileNotFoundError:
        return {}


def apt_resolve(requests, installed, index, suites):
    """The packages to add for `requests` (name or name=version), as index entries sorted by name."""
    chosen = {}
    provided = {}
    for e in installed.values():
        for group in parse_deps(e.get('Provides', '')):
            provided.setdefault(group[0][0], set()).add(e['Package'])
    providers = {}
    for name, entries in index.items():
        for group in parse_deps(entries[0].get('Provides', '')):
            providers.setdefault(group[0][0], []).append(name)
    where = ', '.join(suites)

    def have(name, op, ver):
        for pool in (installed, chosen):
            if name in pool and (not op or satisfies(pool[name]['Version'], op, ver)):
                return True
        return not op and bool(provided.get(name))

    def candidate(name, op, ver):
        for e in index.get(name, []):
            if not op or satisfies(e['Version'], op, ver):
                return e
        if not op:
            for p in sorted(providers.get(name, [])):
                return index[p][0]
        return None

    def add(e):
        chosen[e['Package']] = e
        for group in parse_deps(e.get('Provides', '')):
            provided.setdefault(group[0][0], set()).add(e['Package'])
        for group in parse_deps(e.get('Pre-Depends', '')) + parse_deps(e.get('Depends', '')):
            if any(have(*alt) for alt in group):
                continue
            for alt in group:
                c = candidate(*alt)
                if c:
                    add(c)
                    break
            else:
                text = ' | '.join(f'{n} ({o} {v})' if o else n for n, o, v in group)
                raise BuildError('ResolutionFailed', f"{e['Package']} {e['Version']} needs {text}, which neither the base image nor {where} has", True)

    for req in requests:
        name, _, version = req.partition('=')
        if have(name, '=' if version else None, version or None):
            continue
        c = candidate(name, '=' if version else None, version or None)
        if not c:
            there = f' (versions there: {", ".join(e["Version"] for e in index[name][:5])})' if name in index else ''
            raise BuildError('ResolutionFailed', f'Debian package {req} is not in {where}{there}', True)
        add(c)
    return [chosen[n] for n in sorted(chosen)]


def merged(path):
    for src, dst in MERGED:
        if path == src[:-1]:
            return dst[:-1]
        if path.startswith(src):
            return dst + path[len(src):]
    return path


def unpack_deb(data, stage):
    """The data member of a .deb (an ar archive) unpacked into `stage`, /usr merged, docs dropped."""
    if data[:8] != b'!<arch>\n':
        raise BuildError('InstallFailed', 'not a Debian package (no ar header)')
    pos = 8
    payload = None
    while pos + 60 <= len(data):
        name = data[pos:pos + 16].decode().strip().rstrip('/')
        size = int(data[pos + 48:pos + 58].decode().strip())
        if name.startswith('data.tar'):
            payload = (name, data[pos + 60:pos + 60 + size])
        pos += 60 + size + (size % 2)
    if not payload:
        raise BuildError('InstallFailed', 'a Debian package without a data member')
    name, blob = payload
    if name.endswith('.zst'):
        raise BuildError('InstallFailed', 'zstd-compressed Debian packages are not supported by this builder')
    root = os.path.realpath(stage)
    with tarfile.open(fileobj=io.BytesIO(blob), mode='r:*') as t:
        for m in t.getmembers():
            path = merged(os.path.normpath(m.name).lstrip('/'))
            if path in ('', '.', 'usr', 'usr/lib', 'usr/lib64', 'usr/bin', 'usr/sbin') and m.isdir():
                continue
            if path.startswith('..') or DROPPED.match(path):
                continue
            # Never through a link out of the layer (a package's absolute symlink to a directory, say).
            parent = os.path.realpath(os.path.join(stage, os.path.dirname(path)))
            if parent != root and not parent.startswith(root + os.sep):
                raise BuildError('InstallFailed', f'{path} would be written outside the layer, through a link', True)
            m.name = path
            if m.islnk():
                m.linkname = merged(os.path.normpath(m.linkname).lstrip('/'))
            m.uid = m.gid = 0
            m.mode &= 0o755
            t.extract(m, stage, set_attrs=not m.issym())


def apt_install(entries, stage):
    for e in entries:
        data = fetch(e['url'])
        if hashlib.sha256(data).hexdigest() != e.get('SHA256'):
            raise BuildError('InstallFailed', f"{e['Package']} {e['Version']}: the download does not match the index's sha256")
        unpack_deb(data, stage)
    # dpkg's status: the base's, and what this layer adds.
    status = os.path.join(stage, 'var', 'lib', 'dpkg', 'status')
    os.makedirs(os.path.dirname(status), exist_ok=True)
    base = ''
    if os.path.exists('/var/lib/dpkg/status'):
        with open('/var/lib/dpkg/status') as f:
            base = f.read().rstrip('\n') + '\n\n'
    added = []
    for e in entries:
        lines = [f"Package: {e['Package']}", 'Status: install ok installed', f"Version: {e['Version']}", f"Architecture: {e.get('Architecture', 'amd64')}"]
        lines += [f'{k}: {e[k]}' for k in ('Provides', 'Pre-Depends', 'Depends') if e.get(k)]
        added.append('\n'.join(lines))
    with open(status, 'w') as f:
        f.write(base + '\n\n'.join(added) + '\n')


# ---------------------------------------------------------------- registry


def split_ref(ref):
    """host, repository, tag or digest."""
    host, _, rest = ref.partition('/')
    if '@' in rest:
        repo, _, ref_ = rest.partition('@')
    else:
        repo, _, ref_ = rest.rpartition(':') if ':' in rest else (rest, '', 'latest')
    return host, repo, ref_


class Registry:
    """The distribution API of one registry host, with basic or bearer auth from a dockerconfigjson Secret."""

    def __init__(self, host):
        self.host = host
        self.scheme = os.environ.get('SLIPWAY_REGISTRY_SCHEME') or ('http' if self._plain(host) else 'https')
        # Registries are reached directly: a proxy configured for the package index is not for them.
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self.basic = self._credentials(host)
        self.tokens = {}

    @staticmethod
    def _plain(host):
        h = host.rsplit(':', 1)[0]
        insecure = [x.strip() for x in os.environ.get('SLIPWAY_INSECURE_REGISTRIES', '').split(',') if x.strip()]
        return host in insecure or h in ('localhost', '127.0.0.1')

    @staticmethod
    def _credentials(host):
        path = os.path.join(SECRET_DIR, '.dockerconfigjson')
        if not os.path.exists(path):
            return None
        try:
            with open(path) as f:
                auths = json.load(f).get('auths', {})
        except (OSError, ValueError) as e:
            raise BuildError('PushSecretInvalid', f'the push Secret is not a valid .dockerconfigjson: {e}', True)
        entry = auths.get(host) or auths.get(f'https://{host}') or auths.get(f'http://{host}')
        if not entry:
            return None
        if entry.get('auth'):
            return entry['auth']
        if entry.get('username') is not None:
            return base64.b64encode(f"{entry['username']}:{entry.get('password', '')}".encode()).decode()
        return None

    def call(self, method, path, body=None, headers=None, scope=None, ok=(200, 201, 202, 204)):
        url = path if path.startswith('http') else f'{self.scheme}://{self.host}{path}'
        for attempt in range(2):
            h = dict(headers or {})
            token = self.tokens.get(scope)
            if token:
                h['Authorization'] = f'Bearer {token}'
            elif self.basic:
                h['Authorization'] = f'Basic {self.basic}'
            req = urllib.request.Request(url, data=body, method=method, headers=h)
            try:
                with self.opener.open(req, timeout=300) as res:
                    return res.status, dict(res.headers), res.read()
            except urllib.error.HTTPError as e:
                data = e.read()
                if e.code == 401 and attempt == 0 and self._authorize(e.headers.get('WWW-Authenticate', ''), scope):
                    continue
                if e.code in ok:
                    return e.code, dict(e.headers), data
                if e.code == 404:
                    return 404, dict(e.headers), data
                if e.code in (401, 403):
                    raise BuildError('PushUnauthorized', f'{method} {url}: {e.code} {e.reason}: the registry refused the credentials of the push Secret ({data[:200].decode(errors="replace")})', False)
                raise BuildError('RegistryError', f'{method} {url}: {e.code} {e.reason}: {data[:300].decode(errors="replace")}')
            except (urllib.error.URLError, OSError) as e:
                raise BuildError('RegistryUnreachable', f'{method} {url}: {getattr(e, "reason", e)}')
        raise BuildError('PushUnauthorized', f'{method} {url}: unauthorized')

    def _authorize(self, challenge, scope):
        m = re.match(r'Bearer\s+(.*)', challenge)
        if not m:
            return False
        params = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        q = {'service': params.get('service', '')}
        if scope:
            q['scope'] = scope
        req = urllib.request.Request(f"{params['realm']}?{urllib.parse.urlencode(q)}",
                                     headers={'Authorization': f'Basic {self.basic}'} if self.basic else {})
        try:
            with self.opener.open(req, timeout=60) as res:
                body = json.loads(res.read())
        except urllib.error.HTTPError as e:
            raise BuildError('PushUnauthorized', f'the registry\'s token service refused the push Secret: {e.code} {e.reason}')
        self.tokens[scope] = body.get('token') or body.get('access_token')
        return bool(self.tokens[scope])

    def manifest(self, repo, ref):
        scope = f'repository:{repo}:pull'
        accept = ', '.join([OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST])
        status, headers, body = self.call('GET', f'/v2/{repo}/manifests/{ref}', headers={'Accept': accept}, scope=scope)
        if status == 404:
            return None
        digest = digest_of(body)
        if ref.startswith('sha256:') and digest != ref:
            raise BuildError('RegistryError', f'{repo}@{ref}: the registry returned a manifest whose digest is {digest}', True)
        doc = json.loads(body)
        media = doc.get('mediaType') or headers.get('Content-Type', '')
        if media in (OCI_INDEX, DOCKER_LIST):
            for m in doc.get('manifests', []):
                p = m.get('platform', {})
                if p.get('os') == 'linux' and p.get('architecture') == 'amd64':
                    return self.manifest(repo, m['digest'])
            raise BuildError('BaseImageUnsupported', f'{repo}@{ref} has no linux/amd64 image', True)
        return digest, doc

    def blob(self, repo, digest):
        status, _, body = self.call('GET', f'/v2/{repo}/blobs/{digest}', scope=f'repository:{repo}:pull')
        if status == 404:
            raise BuildError('BaseImageNotFound', f'{repo}: blob {digest} not found', True)
        if digest_of(body) != digest:
            raise BuildError('RegistryError', f'{repo}: blob {digest} does not match its digest')
        return body

    def has_blob(self, repo, digest):
        return self.call('HEAD', f'/v2/{repo}/blobs/{digest}', scope=f'repository:{repo}:pull,push')[0] == 200

    def put_blob(self, repo, digest, data):
        scope = f'repository:{repo}:pull,push'
        if self.has_blob(repo, digest):
            return
        status, headers, _ = self.call('POST', f'/v2/{repo}/blobs/uploads/', scope=scope)
        location = headers.get('Location') or headers.get('location')
        if status != 202 or not location:
            raise BuildError('RegistryError', f'{repo}: the registry did not start an upload ({status})')
        if location.startswith('/'):
            location = f'{self.scheme}://{self.host}{location}'
        sep = '&' if '?' in location else '?'
        self.call('PUT', f'{location}{sep}digest={urllib.parse.quote(digest)}', body=data,
                  headers={'Content-Type': 'application/octet-stream', 'Content-Length': str(len(data))}, scope=scope)

    def mount_blob(self, repo, digest, source_repo):
        """Cross-repository mount; False when the registry wants an upload instead."""
        scope = f'repository:{repo}:pull,push repository:{source_repo}:pull'
        if self.has_blob(repo, digest):
            return True
        status, _, _ = self.call('POST', f'/v2/{repo}/blobs/uploads/?mount={urllib.parse.quote(digest)}&from={urllib.parse.quote(source_repo)}', scope=scope)
        return status == 201

    def put_manifest(self, repo, ref, doc):
        body = json.dumps(doc, separators=(',', ':')).encode()
        self.call('PUT', f'/v2/{repo}/manifests/{ref}', body=body, headers={'Content-Type': doc['mediaType']},
                  scope=f'repository:{repo}:pull,push')
        return digest_of(body), len(body)


# ---------------------------------------------------------------- the build


def sbom(build, image, lock, base_digest, python, debs=()):
    def pkg(i, name, version, purl, checksum=None):
        p = {'SPDXID': f'SPDXRef-Package-{i}', 'name': name, 'versionInfo': version, 'downloadLocation': 'NOASSERTION',
             'filesAnalyzed': False,
             'externalRefs': [{'referenceCategory': 'PACKAGE-MANAGER', 'referenceType': 'purl', 'referenceLocator': purl}]}
        if checksum:
            p['checksums'] = [{'algorithm': 'SHA256', 'checksumValue': checksum}]
        return p
    packages = [pkg(0, 'base-image', base_digest, f"pkg:oci/{build['baseImage'].split('/')[-1].split('@')[0]}@{urllib.parse.quote(base_digest)}"),
                pkg(1, 'python', python, f'pkg:generic/python@{python}')]
    packages += [pkg(i + 2, p['name'], p['version'], f"pkg:pypi/{p['name']}@{p['version']}", p['sha256']) for i, p in enumerate(lock)]
    packages += [pkg(i + 2 + len(lock), e['Package'], e['Version'], f"pkg:deb/debian/{e['Package']}@{urllib.parse.quote(e['Version'])}?arch={e.get('Architecture', 'amd64')}", e.get('SHA256'))
                 for i, e in enumerate(debs)]
    return json.dumps({
        'spdxVersion': 'SPDX-2.3', 'dataLicense': 'CC0-1.0', 'SPDXID': 'SPDXRef-DOCUMENT', 'name': image,
        'documentNamespace': f"https://slipway.dev/spdx/environments/{build['hash']}",
        'creationInfo': {'created': '1970-01-01T00:00:00Z', 'creators': ['Tool: slipway environment builder']},
        'packages': packages,
    }, indent=2, sort_keys=True).encode()


def lock_text(lock, debs=()):
    return ' '.join([f"{p['name']}=={p['version']}" for p in lock] + [f"deb:{e['Package']}=={e['Version']}" for e in debs])


def build(spec):
    host, base_repo, base_ref = split_ref(spec['baseImage'])
    if not base_ref.startswith('sha256:'):
        raise BuildError('BaseImageNotPinned', f"{spec['baseImage']}: the base image must be pinned by digest", True)
    t_host, repo, _ = split_ref(spec['repository'] + ':x')
    target = Registry(t_host)
    source = target if host == t_host else Registry(host)
    tag = spec['hash']
    python = '.'.join(map(str, sys.version_info[:3]))

    existing = target.manifest(repo, tag)
    if existing:
        digest, doc = existing
        config = json.loads(target.blob(repo, doc['config']['digest']))
        lock = config.get('config', {}).get('Labels', {}).get(LABEL_LOCK, '')
        sbom_ref = target.manifest(repo, f'{tag}.sbom')
        log(f'reusing {spec["repository"]}@{digest}: already built for {tag}')
        return {'image': f"{spec['repository']}@{digest}", 'sbom': sbom_ref[0] if sbom_ref else '', 'lock': lock, 'python': python, 'reused': True}

    # Everything is resolved before anything is built: a package that cannot be had fails the build here.
    apt_requests = list(spec.get('apt', [])) + [f"r-cran-{n.lower()}" for n in spec.get('r', [])]
    debs = []
    if apt_requests:
        codename = os_codename()
        log(f'resolving {len(apt_requests)} Debian packages in {codename}')
        index, suites = apt_index(codename)
        debs = apt_resolve(apt_requests, installed_packages(), index, suites)
        log(f'locked {len(debs)} Debian packages: {lock_text([], debs)}')
    log(f"resolving {len(spec['pip'])} requirements for Python {python}")
    lock = resolve(spec['pip']) if spec['pip'] else []
    log(f'locked {len(lock)} Python packages: {lock_text(lock)}')

    base = source.manifest(base_repo, base_ref)
    if not base:
        raise BuildError('BaseImageNotFound', f"{spec['baseImage']}: no such image in the registry", True)
    base_digest, base_doc = base
    base_config = json.loads(source.blob(base_repo, base_doc['config']['digest']))

    stage = os.path.join(WORK, 'stage')
    os.makedirs(stage, exist_ok=True)
    if debs:
        apt_install(debs, stage)
    if lock:
        install(lock, stage)
    blob, diff_id = layer_of(stage)
    layer_digest = digest_of(blob)
    log(f'layer {layer_digest}: {len(blob)} bytes compressed')

    layers = []
    for l in base_doc['layers']:
        media = LAYER_TYPES.get(l['mediaType'])
        if not media:
            raise BuildError('BaseImageUnsupported', f"base layer {l['digest']} is {l['mediaType']}", True)
        if source is target:
            if not target.mount_blob(repo, l['digest'], base_repo):
                target.put_blob(repo, l['digest'], source.blob(base_repo, l['digest']))
        elif not target.has_blob(repo, l['digest']):
            target.put_blob(repo, l['digest'], source.blob(base_repo, l['digest']))
        layers.append({'mediaType': media, 'digest': l['digest'], 'size': l['size']})
    target.put_blob(repo, layer_digest, blob)
    layers.append({'mediaType': OCI_LAYER, 'digest': layer_digest, 'size': len(blob)})

    config = dict(base_config)
    inner = dict(config.get('config') or {})
    labels = dict(inner.get('Labels') or {})
    labels[LABEL_HASH] = tag
    labels[LABEL_LOCK] = lock_text(lock, debs)
    inner['Labels'] = labels
    config['config'] = inner
    config['rootfs'] = {'type': 'layers', 'diff_ids': list(base_config['rootfs']['diff_ids']) + [diff_id]}
    config['history'] = list(base_config.get('history') or []) + [
        {'created': '1970-01-01T00:00:00Z', 'created_by': f'slipway environment builder: {len(debs)} Debian packages, {len(lock)} locked wheels'}]
    config_bytes = json.dumps(config, separators=(',', ':')).encode()
    config_digest = digest_of(config_bytes)
    target.put_blob(repo, config_digest, config_bytes)

    manifest = {
        'schemaVersion': 2, 'mediaType': OCI_MANIFEST,
        'config': {'mediaType': OCI_CONFIG, 'digest': config_digest, 'size': len(config_bytes)},
        'layers': layers,
        'annotations': {LABEL_HASH: tag, 'org.opencontainers.image.base.digest': base_digest,
                        'org.opencontainers.image.base.name': f'{host}/{base_repo}'},
    }
    digest, size = target.put_manifest(repo, tag, manifest)
    image = f"{spec['repository']}@{digest}"
    log(f'pushed {image}')

    doc = sbom(spec, image, lock, base_digest, python, debs)
    sbom_digest = digest_of(doc)
    target.put_blob(repo, digest_of(EMPTY), EMPTY)
    target.put_blob(repo, sbom_digest, doc)
    art = {
        'schemaVersion': 2, 'mediaType': OCI_MANIFEST, 'artifactType': SPDX_TYPE,
        'config': {'mediaType': EMPTY_TYPE, 'digest': digest_of(EMPTY), 'size': len(EMPTY)},
        'layers': [{'mediaType': SPDX_TYPE, 'digest': sbom_digest, 'size': len(doc)}],
        'subject': {'mediaType': OCI_MANIFEST, 'digest': digest, 'size': size},
    }
    art_digest, _ = target.put_manifest(repo, f'{tag}.sbom', art)
    log(f'SBOM {art_digest} ({len(lock) + len(debs) + 2} packages)')
    return {'image': image, 'sbom': art_digest, 'lock': lock_text(lock, debs), 'python': python, 'reused': False}


def main():
    try:
        spec = json.loads(os.environ['SLIPWAY_BUILD'])
        os.makedirs(WORK, exist_ok=True)
        report(build(spec))
        return 0
    except BuildError as e:
        log(f'{e.reason}: {e.message}')
        report({'reason': e.reason, 'message': e.message[-3500:]})
        return 2 if e.permanent else 1
    except Exception as e:  # noqa: BLE001 - a crash is reported, not lost
        log(f'BuilderError: {e!r}')
        report({'reason': 'BuilderError', 'message': repr(e)[-3500:]})
        return 1


if __name__ == '__main__':
    sys.exit(main())
