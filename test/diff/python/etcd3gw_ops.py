"""Drives Debian's python3-etcd3gw (2.0, the JSON gateway client OpenStack uses) through its whole API against one
server and prints one JSON line per step. Run by test/diff/python-clients.test.ts with Debian's /usr/bin/python3,
against etcd 3.4 and against edgecd. Usage: etcd3gw_ops.py HOST PORT SECTION...

Lease ids are replaced by their order of appearance; member ids, cluster ids and raft terms are normalised by the
test.
"""
import json
import os
import re
import sys
import threading
import time
import urllib.request

import etcd3gw
from etcd3gw import exceptions

HOST = sys.argv[1]
PORT = int(sys.argv[2])
SECTIONS = sys.argv[3:]


def watcher_count():
    """The server's etcd_debugging_mvcc_watcher_total (etcd 3.4 and edgecd both export it), or None."""
    try:
        with urllib.request.urlopen('http://%s:%d/metrics' % (HOST, PORT), timeout=10) as r:
            m = re.search(r'^etcd_debugging_mvcc_watcher_total (\S+)$', r.read().decode(), re.M)
            return float(m.group(1)) if m else None
    except Exception:
        return None


def wait_watchers(n, timeout=20):
    """Waits (bounded) until the server counts n watchers or more: a watch another thread opens is in place before
    the writes it must see (a fixed sleep was not enough on a loaded machine)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        w = watcher_count()
        if w is None or w >= n:
            return
        time.sleep(0.02)

leases = {}


def lease_name(lease_id):
    lease_id = int(lease_id)
    if lease_id not in leases:
        leases[lease_id] = 'L%d' % (len(leases) + 1)
    return leases[lease_id]


def plain(x):
    """Bytes as text, lease ids named, recursively."""
    if isinstance(x, bytes):
        return x.decode('utf-8', 'backslashreplace')
    if isinstance(x, dict):
        out = {}
        for k, v in x.items():
            if k in ('lease', 'ID') and isinstance(v, str) and v.isdigit() and int(v) in leases:
                out[k] = leases[int(v)]
            else:
                out[k] = plain(v)
        return out
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    return x


def error(e):
    out = {'error': type(e).__name__}
    if isinstance(e, exceptions.Etcd3Exception):
        out['detail'] = e.detail_text
        out['args'] = list(e.args)
    elif str(e):
        out['message'] = str(e)
    return out


def step(name, f):
    started = time.time()
    try:
        result = plain(f())
    except Exception as e:  # noqa: BLE001 - the class name is the result
        result = error(e)
    print(json.dumps([name, result], sort_keys=True, separators=(',', ':')), flush=True)
    if os.environ.get('OPS_TIMING'):
        print('%6.2f s  %s' % (time.time() - started, name), file=sys.stderr)
    return result


c = etcd3gw.client(host=HOST, port=PORT)
c.api_path = '/v3/'


def paths():
    # etcd3gw 2.0 defaults to /v3alpha/, which etcd 3.4 no longer serves; /v3beta/ and /v3/ both answer.
    for path in ('/v3alpha/', '/v3beta/', '/v3/'):
        g = etcd3gw.client(host=HOST, port=PORT)
        g.api_path = path
        step('put via ' + path, lambda: g.put('p/' + path, 'v'))
        step('get via ' + path, lambda: g.get('p/' + path))
    step('unknown route', lambda: c.post(c.get_url('/kv/nothing'), json={}))
    step('bad json', lambda: c.post(c.get_url('/kv/put'), data='{'))


def kv():
    step('put a', lambda: c.put('k/a', 'va'))
    step('put b', lambda: c.put('k/b', 'vb'))
    step('put c', lambda: c.put('k/c', 'vc'))
    step('put c again', lambda: c.put('k/c', 'vc2'))
    step('put empty value', lambda: c.put('k/e', ''))
    step('put bytes', lambda: c.put(b'k/\xff', b'\x00\x01'))
    step('get a', lambda: c.get('k/a'))
    step('get missing', lambda: c.get('nothing'))
    step('get metadata', lambda: c.get('k/c', metadata=True))
    step('get bytes', lambda: c.get(b'k/\xff', metadata=True))
    step('get_prefix', lambda: c.get_prefix('k/'))
    step('get_prefix sort value descend', lambda: c.get_prefix('k/', sort_order='descend', sort_target='value'))
    step('get_prefix sort mod ascend', lambda: c.get_prefix('k/', sort_order='ascend', sort_target='mod'))
    step('get_prefix sort version', lambda: c.get_prefix('k/', sort_order='descend', sort_target='version'))
    step('get_prefix sort create', lambda: c.get_prefix('k/', sort_order='descend', sort_target='create'))
    step('get_prefix bad sort', lambda: c.get_prefix('k/', sort_order='sideways'))
    step('get_all', lambda: c.get_all())
    step('get_all sort', lambda: c.get_all(sort_order='descend', sort_target='key'))
    step('get limit', lambda: c.get('k/', metadata=True, range_end=etcd3gw.utils._encode('k0'), limit=2))
    step('get keys_only', lambda: c.get('k/', metadata=True, range_end=etcd3gw.utils._encode('k0'), keys_only=True))
    step('get count_only', lambda: c.get('k/', range_end=etcd3gw.utils._encode('k0'), count_only=True))
    step('get revision', lambda: c.get('k/c', metadata=True, revision=4))
    step('get future revision', lambda: c.get('k/c', revision=1000))
    step('get serializable', lambda: c.get('k/a', serializable=True))
    step('create new', lambda: c.create('k/n', 'n1'))
    step('create existing', lambda: c.create('k/n', 'n2'))
    step('replace ok', lambda: c.replace('k/a', 'va', 'va2'))
    step('replace wrong', lambda: c.replace('k/a', 'va', 'va3'))
    step('replace missing', lambda: c.replace('k/missing', 'x', 'y'))
    step('get a after replace', lambda: c.get('k/a'))
    step('delete a', lambda: c.delete('k/a'))
    step('delete a again', lambda: c.delete('k/a'))
    step('delete prev_kv', lambda: c.delete('k/b', prev_kv=True))
    step('delete_prefix', lambda: c.delete_prefix('k/'))
    step('delete_prefix none', lambda: c.delete_prefix('k/'))
    step('get_all after', lambda: c.get_all())
    step('put empty key', lambda: c.put('', 'x'))
    step('delete empty key', lambda: c.delete(''))


def txn():
    b = etcd3gw.utils._encode
    c.put('t/a', '1')
    step('txn success', lambda: c.transaction({
        'compare': [{'key': b('t/a'), 'result': 'EQUAL', 'target': 'VALUE', 'value': b('1')}],
        'success': [{'request_put': {'key': b('t/a'), 'value': b('2'), 'prev_kv': True}},
                    {'request_range': {'key': b('t/a')}}],
        'failure': [{'request_range': {'key': b('t/a')}}]}))
    step('txn failure', lambda: c.transaction({
        'compare': [{'key': b('t/a'), 'result': 'EQUAL', 'target': 'VALUE', 'value': b('1')}],
        'success': [{'request_put': {'key': b('t/a'), 'value': b('3')}}],
        'failure': [{'request_range': {'key': b('t/a')}}, {'request_delete_range': {'key': b('t/none')}}]}))
    step('txn version/mod/create', lambda: c.transaction({
        'compare': [{'key': b('t/a'), 'result': 'GREATER', 'target': 'VERSION', 'version': 1},
                    {'key': b('t/a'), 'result': 'LESS', 'target': 'MOD', 'mod_revision': 1000},
                    {'key': b('t/a'), 'result': 'NOT_EQUAL', 'target': 'CREATE', 'create_revision': 0}],
        'success': [{'request_txn': {'success': [{'request_range': {'key': b('t/a')}}]}}]}))
    step('txn numbers as strings', lambda: c.transaction({
        'compare': [{'key': b('t/a'), 'result': 'EQUAL', 'target': 'VERSION', 'version': '2'}],
        'success': [{'request_range': {'key': b('t/a'), 'limit': '1'}}]}))
    step('txn duplicate key', lambda: c.transaction({
        'success': [{'request_put': {'key': b('t/d'), 'value': b('1')}},
                    {'request_put': {'key': b('t/d'), 'value': b('2')}}]}))
    step('txn bad target', lambda: c.transaction({
        'compare': [{'key': b('t/a'), 'result': 'EQUAL', 'target': 'COLOUR'}]}))
    step('txn empty', lambda: c.transaction({}))


def lease():
    lease = c.lease(ttl=100)
    step('lease', lambda: [lease_name(lease.id)])
    step('put with lease', lambda: c.put('l/a', 'a', lease=lease))
    step('create with lease', lambda: c.create('l/b', 'b', lease=lease))
    step('get leased', lambda: c.get('l/a', metadata=True))
    step('ttl', lambda: 95 <= lease.ttl() <= 100)
    step('refresh', lambda: lease.refresh())
    step('keys', lambda: sorted(lease.keys()))
    step('revoke', lambda: lease.revoke())
    step('get after revoke', lambda: c.get_prefix('l/'))
    step('ttl after revoke', lambda: lease.ttl())
    step('keys after revoke', lambda: lease.keys())
    step('refresh after revoke', lambda: lease.refresh())
    step('revoke again', lambda: lease.revoke())
    step('put with bad lease', lambda: c.put('l/c', 'c', lease=etcd3gw.Lease(123456789, client=c)))
    short = c.lease(ttl=0)
    step('grant ttl 0', lambda: short.ttl() > 0)
    step('revoke it', lambda: short.revoke())
    step('grant ttl string', lambda: lease_name(c.lease(ttl='30').id))
    step('grant with id', lambda: c.post(c.get_url('/lease/grant'), json={'TTL': 30, 'ID': 4242}))
    step('grant same id', lambda: c.post(c.get_url('/lease/grant'), json={'TTL': 30, 'ID': 4242}))
    # soonest expiry first on both; two leases granted a moment apart with one TTL may tie on edgecd's clock
    step('leases', lambda: sorted(lease_name(x['ID']) for x in c.post(c.get_url('/lease/leases'), json={})['leases']))


def lock():
    l1 = c.lock('res', ttl=30)
    l2 = c.lock('res', ttl=30)
    step('acquire', lambda: l1.acquire())
    step('is_acquired', lambda: l1.is_acquired())
    step('other is_acquired', lambda: l2.is_acquired())
    step('contended acquire', lambda: l2.acquire())
    step('lock key', lambda: [c.get('/locks/res', metadata=True)[0][1]['version']])
    step('refresh', lambda: l1.refresh())
    step('release other', lambda: l2.release())
    step('release', lambda: l1.release())
    step('release again', lambda: l1.release())
    step('acquire after release', lambda: l2.acquire())
    step('context manager', lambda: context_lock())
    step('release l2', lambda: l2.release())
    step('lock uuid length', lambda: len(l1.uuid))


def context_lock():
    with c.lock('ctx', ttl=10) as l:
        return l.is_acquired()


def watch():
    r0 = int(c.post(c.get_url('/kv/put'), json={'key': etcd3gw.utils._encode('w/0'),
                                                  'value': etcd3gw.utils._encode('zero')})['header']['revision'])
    before = watcher_count()
    events, cancel = c.watch('w/a')
    got = []

    def consume(it, into):
        for e in it:
            into.append(e)
    t = threading.Thread(target=consume, args=(events, got))
    t.start()
    # The streaming POST returns before the server may have created the watch: wait until it counts it.
    wait_watchers((before or 0) + 1)
    c.put('w/a', '1')
    c.put('w/a', '2')
    c.delete('w/a')
    wait(got, 3)
    cancel()
    t.join(5)
    step('watch events', lambda: got)
    step('watch ended after cancel', lambda: not t.is_alive())
    events, cancel = c.watch_prefix('w/', prev_kv=True)
    got2 = []
    t = threading.Thread(target=consume, args=(events, got2))
    t.start()
    time.sleep(0.5)
    c.put('w/b', 'b1')
    c.put('w/b', 'b2')
    c.put('wx', 'outside')
    c.delete('w/b')
    wait(got2, 3)
    cancel()
    t.join(5)
    step('watch_prefix prev_kv', lambda: got2)
    step('watch_once start_revision', lambda: c.watch_once('w/a', timeout=5, start_revision=r0))
    step('watch_prefix_once start_revision', lambda: c.watch_prefix_once('w/', timeout=5, start_revision=r0 + 1))
    step('watch_once timeout', lambda: c.watch_once('w/quiet', timeout=0.5))
    step('watch_once filter', lambda: c.watch_once('w/a', timeout=5, start_revision=r0, filters=['NOPUT']))
    events, cancel = c.watch_prefix('w/', start_revision=r0)
    first = []
    for e in events:
        first.append(e)
        if len(first) == 5:
            break
    cancel()
    step('watch_prefix history', lambda: first)


def wait(got, n):
    deadline = time.time() + 5
    while len(got) < n and time.time() < deadline:
        time.sleep(0.05)


def compaction():
    r1 = int(c.post(c.get_url('/kv/put'), json={'key': etcd3gw.utils._encode('cp/a'),
                                                  'value': etcd3gw.utils._encode('1')})['header']['revision'])
    c.put('cp/a', '2')
    step('compact', lambda: c.post(c.get_url('/kv/compaction'), json={'revision': r1 + 1}))
    step('get compacted', lambda: c.get('cp/a', revision=r1))
    step('watch compacted', lambda: c.watch_once('cp/a', timeout=1, start_revision=r1))


def cluster():
    step('status keys', lambda: sorted(c.status().keys()))
    step('status', lambda: {k: v for k, v in c.status().items() if k in ('version', 'leader', 'header')})
    step('members', lambda: c.members())
    step('alarms', lambda: c.post(c.get_url('/maintenance/alarm'), json={'action': 'GET'}))
    step('hash keys', lambda: sorted(c.post(c.get_url('/maintenance/hash'), json={}).keys()))
    step('defragment', lambda: c.post(c.get_url('/maintenance/defragment'), json={}))


def auth():
    # etcd3gw has no auth API of its own: its session carries the token header, as OpenStack deployments set it.
    def call(client, path, body):
        return client.post(client.get_url(path), json=body)
    step('user add root', lambda: call(c, '/auth/user/add', {'name': 'root', 'password': 'rootpw'}))
    step('grant root', lambda: call(c, '/auth/user/grant', {'user': 'root', 'role': 'root'}))
    step('user add u', lambda: call(c, '/auth/user/add', {'name': 'u', 'password': 'upw'}))
    step('role add r', lambda: call(c, '/auth/role/add', {'name': 'r'}))
    step('grant perm', lambda: call(c, '/auth/role/grant', {
        'name': 'r', 'perm': {'permType': 'READWRITE', 'key': etcd3gw.utils._encode('ok/'),
                              'range_end': etcd3gw.utils._encode('ok0')}}))
    step('grant r', lambda: call(c, '/auth/user/grant', {'user': 'u', 'role': 'r'}))
    step('enable', lambda: call(c, '/auth/enable', {}))
    step('no token put', lambda: c.put('ok/a', '1'))
    step('no token get', lambda: c.get('ok/a'))
    step('wrong password', lambda: call(c, '/auth/authenticate', {'name': 'u', 'password': 'bad'}))
    u = etcd3gw.client(host=HOST, port=PORT)
    u.api_path = '/v3/'
    token = call(u, '/auth/authenticate', {'name': 'u', 'password': 'upw'})['token']
    u.session.headers['Authorization'] = token
    step('u put', lambda: u.put('ok/a', '1'))
    step('u get', lambda: u.get('ok/a'))
    step('u put denied', lambda: u.put('no/a', '1'))
    step('u get denied', lambda: u.get('no/a'))
    step('u delete_prefix denied', lambda: u.delete_prefix('no/'))
    step('u lock denied', lambda: u.lock('x', ttl=10).acquire())
    step('u lease', lambda: bool(u.lease(ttl=10).id))
    step('u members', lambda: len(u.members()))
    step('u user list denied', lambda: call(u, '/auth/user/list', {}))
    step('u watch denied', lambda: u.watch_once('no/a', timeout=1))
    step('bad token', lambda: etcd3gw_with_token('not-a-token').get('ok/a'))
    root = etcd3gw_with_token(call(u, '/auth/authenticate', {'name': 'root', 'password': 'rootpw'})['token'])
    step('root disable', lambda: call(root, '/auth/disable', {}))
    step('after disable', lambda: c.get('ok/a'))


def etcd3gw_with_token(token):
    g = etcd3gw.client(host=HOST, port=PORT)
    g.api_path = '/v3/'
    g.session.headers['Authorization'] = token
    return g


for s in SECTIONS:
    print(json.dumps(['== ' + s, None]), flush=True)
    globals()[s]()
