"""Checked by mypy in test_models.py (not run): each family satisfies the protocols
components/models/base.py writes down."""
from components.models import base, charlm, dcgan, lstm, ngram, vae

gan_trained: base.TrainedModel = dcgan.Model(dcgan.Args())
gan_samples: base.ImageSampler = dcgan.Model(dcgan.Args())
vae_trained: base.ValidatingModel = vae.Model(vae.Args())
vae_samples: base.ImageSampler = vae.Model(vae.Args())
transformer_trained: base.ValidatingModel = charlm.Model(charlm.Args())
transformer_samples: base.TextSampler = charlm.Model(charlm.Args())
lstm_trained: base.ValidatingModel = lstm.Model(lstm.Args())
lstm_samples: base.TextSampler = lstm.Model(lstm.Args())
ngram_counted: base.CountedModel = ngram.Model(ngram.Args())
ngram_samples: base.TextSampler = ngram.Model(ngram.Args())
