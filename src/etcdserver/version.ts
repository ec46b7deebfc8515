/** The etcd version this member answers as (etcd-api.md §1): served by GET /version and stored in the member's attributes. */
export const etcdVersion = { etcdserver: '3.4.23', etcdcluster: '3.4.0' }
