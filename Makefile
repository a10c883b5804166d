# The two commands of the README: `make demo` and `make test`. Both install
# what they need (npm ci from the lock file; better-sqlite3 builds from source).
.PHONY: all install build test test-browser lint format soak demo demo-viewer proto clean dataset

all: build

node_modules/.package-lock.json: package.json package-lock.json proto/package.json shared/package.json server-common/package.json server-c1/package.json server-c2/package.json client/package.json
	npm ci --no-audit --no-fund

install: node_modules/.package-lock.json

# The C fast paths (shared/native/) are built by npm ci; rebuilt here when they change.
NATIVE := shared/build/Release/fast_paillier.node

$(NATIVE): shared/binding.gyp $(wildcard shared/native/*.c shared/native/*.h) | install
	cd shared && npm run install

build: install $(NATIVE)
	npx tsc -b

# The tests are type-checked first (tsconfig.tests.json): vitest only strips types.
test: build lint
	npx tsc -p tsconfig.tests.json
	npx vitest run

# The viewer's browser test alone (also part of make test): Debian's chromium, headless.
test-browser: build
	npx vitest run client/src/viewer/viewer.browser.test.ts

# Formatting (Prettier, .prettierrc.json) and lint (ESLint + typescript-eslint, eslint.config.mjs).
lint: install
	npx prettier --check --log-level warn .
	npx eslint .

# Rewrites the files Prettier would change (then commit them on their own).
format: install
	npx prettier --write --log-level warn .

# Faults and load (*.soak.test.ts, vitest.soak.config.mts): C2 killed mid-query
# 20 times, C1 killed mid-upload 20 times, C1 and C2 killed in group changes 20
# times each, C1's database on a full 8 MiB tmpfs (mounted: needs root), 8
# concurrent clients; real daemons.
soak: build
	npx vitest run --config vitest.soak.config.mts

demo: build
	node client/dist/demo.js

# The demo, then its deployment kept up with the doctor's viewer on
# 127.0.0.1:8080 (FNN_DEMO_LISTEN to change it) until Ctrl-C.
demo-viewer: build
	FNN_DEMO_VIEWER=1 node client/dist/demo.js

# Regenerate proto/src/generated/ from proto/fnn/v1/*.proto (buf and ts-proto from npm).
proto: install
	cd proto && ../node_modules/.bin/buf lint && rm -rf src/generated && ../node_modules/.bin/buf generate

# The benchmark collection (bench/make-dataset.mjs) and the scale collection
# (bench/make-scale-collection.mjs, data/scale/): real MRI from Debian's
# mricron-data. Needs apt and Debian's mirror once; the .deb stays in data/cache.
DEB_CACHE := data/cache
TEMPLATES := $(DEB_CACHE)/root/usr/share/mricron/templates
VOLUME := $(TEMPLATES)/ch2better.nii.gz

dataset: build $(VOLUME)
	node bench/make-dataset.mjs $(VOLUME) data
	node bench/make-scale-collection.mjs $(TEMPLATES) data/scale

$(VOLUME):
	mkdir -p $(DEB_CACHE)
	cd $(DEB_CACHE) && (apt-get download mricron-data || (apt-get update && apt-get download mricron-data))
	dpkg-deb -x $$(ls $(DEB_CACHE)/mricron-data_*.deb | head -n 1) $(DEB_CACHE)/root
	touch $@

clean:
	rm -rf */dist node_modules shared/build
