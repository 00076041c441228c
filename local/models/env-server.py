# A model server that uses its environment's packages: scikit-learn fits a small model at start, and every
# answer (Open Inference Protocol V2) carries the versions of the packages installed in the image it runs from,
# so a test can see that what serves is what the environment's lock says. Run as `python3 -c "$(cat this)"`.
import importlib.metadata as metadata
import json
import os
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from sklearn.linear_model import LogisticRegression

NAME = os.environ['SLIPWAY_MODEL_NAME']
VERSION = os.environ['SLIPWAY_MODEL_VERSION']
MODEL = LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), [0, 0, 1, 1])
PACKAGES = {re.sub(r'[-_.]+', '-', d.metadata['Name']).lower(): d.version for d in metadata.distributions()}


class Handler(BaseHTTPRequestHandler):
    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path in ('/v2/health/ready', '/v2/health/live', f'/v2/models/{NAME}/ready'):
            self.reply(200, {'ready': True})
        else:
            self.reply(404, {'error': f'no route {self.path}'})

    def do_POST(self):
        if self.path != f'/v2/models/{NAME}/infer':
            return self.reply(404, {'error': f'no route {self.path}'})
        body = json.loads(self.rfile.read(int(self.headers.get('Content-Length', '0'))) or b'{}')
        rows = np.array(body['inputs'][0]['data'], dtype=float).reshape(-1, 1)
        predictions = [int(p) for p in MODEL.predict(rows)]
        self.reply(200, {'model_name': NAME, 'model_version': VERSION, 'parameters': {'packages': PACKAGES},
                         'outputs': [{'name': 'predict', 'shape': [len(predictions)], 'datatype': 'INT64', 'data': predictions}]})

    def log_message(self, *args):
        pass


ThreadingHTTPServer(('0.0.0.0', int(os.environ['SLIPWAY_PORT'])), Handler).serve_forever()
