# The two commands of the README: `make demo` and `make test`. Both install
# what they need (npm ci from the lock file; better-sqlite3 builds from source).
.PHONY: all install build test demo proto clean

all: build

node_modules/.package-lock.json: package.json package-lock.json proto/package.json shared/package.json server-c1/package.json server-c2/package.json client/package.json
	npm ci --no-audit --no-fund

install: node_modules/.package-lock.json

build: install
	npx tsc -b

test: build
	npx vitest run

demo: build
	node client/dist/demo.js

# Regenerate proto/src/generated/ from proto/fnn/v1/*.proto (buf and ts-proto from npm).
proto: install
	cd proto && ../node_modules/.bin/buf lint && rm -rf src/generated && ../node_modules/.bin/buf generate

clean:
	rm -rf */dist node_modules
