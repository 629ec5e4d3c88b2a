# Build and install cyrus-backupd on a Debian-style host.
#
#   npm ci                                # dependencies and the native addons (needs python3, make, g++)
#   make release                          # the self-contained release in release/ (= npm run build:release)
#   make install PREFIX=/usr/local        # $(PREFIX)/lib/cyrus-backupd + $(PREFIX)/libexec/cyrus-backupd/<program>
#   make install DESTDIR=/tmp/stage PREFIX=/usr NODE=/usr/bin/node   # staged, for packaging
#   make uninstall PREFIX=/usr/local
#
# NODE is the Node.js 20+ binary the installed wrappers exec (default: the first node on PATH,
# resolved now, because master's environment may have another PATH). See docs/release.md.

PREFIX ?= /usr/local
DESTDIR ?=
NODE ?= $(shell command -v node)
NPM ?= npm

.PHONY: all release install uninstall check clean

all: release

# Always rebuilt (it takes seconds); `install` builds only when no release exists yet.
release:
	node scripts/build-release.mjs

release/build-info.json:
	node scripts/build-release.mjs

install: release/build-info.json
	node scripts/install-prefix.mjs --prefix "$(PREFIX)" --destdir "$(DESTDIR)" --node "$(NODE)"

uninstall:
	rm -rf "$(DESTDIR)$(PREFIX)/lib/cyrus-backupd" "$(DESTDIR)$(PREFIX)/libexec/cyrus-backupd"

check:
	$(NPM) test

clean:
	rm -rf release
