# Sourced by the deploy scripts that install Debian packages when something they need is
# missing (a plain Debian machine has none of it). Needs the caller's `log`.

# apt_install PACKAGE...: installs quietly, as root or through sudo.
apt_install() {
  log "installing $*"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}
