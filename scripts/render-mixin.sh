#!/usr/bin/env bash
# Re-renders contrib/mixin/ from a checkout of etcd-io/etcd: its Prometheus alert rules (alerts.libsonnet with the
# mixin's default config) and the Prometheus queries of its Grafana dashboard (targets.libsonnet, with a stub of
# grafonnet's query builder, which the mixin pulls in with jsonnet-bundler). Needs Debian's jsonnet and python3-yaml.
# Usage: scripts/render-mixin.sh /path/to/etcd [commit]   (not run by CI: the rendered files are committed)
set -euo pipefail
etcd="${1:?usage: $0 /path/to/etcd-checkout [commit]}"
rev="${2:-HEAD}"
out="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/contrib/mixin"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/alerts" "$tmp/dashboards"
for f in config.libsonnet alerts/alerts.libsonnet dashboards/targets.libsonnet; do
  git -C "$etcd" show "$rev:contrib/mixin/$f" >"$tmp/$f"
done
git -C "$etcd" show "$rev:LICENSE" >"$out/LICENSE"
commit="$(git -C "$etcd" rev-parse "$rev")"
cat >"$tmp/dashboards/g.libsonnet" <<'JSONNET'
{ query: { prometheus: { new(ds, expr): { expr: expr }, withLegendFormat(l): { legendFormat: l } } } }
JSONNET
cat >"$tmp/toyaml.py" <<'PY'
import json, sys, yaml
class D(yaml.SafeDumper): pass
D.add_representer(str, lambda d, v: d.represent_scalar('tag:yaml.org,2002:str', v, style='|' if '\n' in v else None))
print(yaml.dump(json.load(open(sys.argv[1])), Dumper=D, sort_keys=False, width=1000), end='')
PY
cd "$tmp"
jsonnet -e '((import "config.libsonnet") + (import "alerts/alerts.libsonnet")).prometheusAlerts' >alerts.json
jsonnet -e 'local c = (import "config.libsonnet")._config; (import "dashboards/targets.libsonnet")({datasource:{name:"datasource"}}, c)' >targets.json
{
  echo "# etcd's Prometheus alert rules, rendered from etcd-io/etcd contrib/mixin (commit $commit)"
  echo "# with Debian's jsonnet 0.18 and the mixin's default config; Apache License 2.0, see LICENSE beside this file."
  echo "# Regenerate: scripts/render-mixin.sh. Do not edit by hand."
  python3 toyaml.py alerts.json
} >"$out/etcd-prometheusRules.yaml"
{
  echo "# The Prometheus queries of etcd's Grafana dashboard (contrib/mixin/dashboards/targets.libsonnet), rendered with a stub"
  echo "# of grafonnet's query builder; Apache License 2.0, see LICENSE. Regenerate: scripts/render-mixin.sh."
  python3 toyaml.py targets.json
} >"$out/dashboard-queries.yaml"
echo "rendered $out from etcd $commit"
