"""Networks (`mlp`, `alexnet`) and the LightningModule that trains any of them (`classifier`)."""
