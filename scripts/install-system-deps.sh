#!/usr/bin/env bash
# Installs the Debian packages the integration tests and benches run for real: a Prometheus server
# (with promtool, for the alert-rule checks) and prometheus-node-exporter (the scrape-latency
# reference), tmux for neuron-top's end-to-end test, openssl for the TLS test's certificate and systemd
# for systemd-analyze, which checks deploy/systemd/neurond.service.
# Safe to run again: it does nothing when everything is there, and runs `apt-get update`
# once, only when something has to be installed. Without root it says what to run and skips.
set -euo pipefail

packages=(prometheus prometheus-node-exporter tmux openssl systemd)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-system-deps: ${packages[*]} already installed"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-system-deps: not root, skipping; as root run: apt-get update && apt-get install ${missing[*]}" >&2
  exit 0
fi

echo "install-system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-system-deps: installed ${missing[*]}"
