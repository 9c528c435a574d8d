import torch
from torch import nn

from autoc.arch.policy import LayerPolicy
from autoc.data.datasets import load_dataset
from autoc.modelspace import ModelPolicy, analyse
from autoc.modelspace.estimate import estimate_policy, original_logits
from autoc.training.loop import TrainConfig, accuracy, train


def _user_net(classes):
    """A small residual CNN standing in for a user's trained model."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU())
            self.body = nn.Sequential(nn.Conv2d(32, 48, 3, padding=1), nn.BatchNorm2d(48), nn.ReLU(),
                                      nn.Conv2d(48, 32, 3, padding=1), nn.BatchNorm2d(32))
            self.fc = nn.Linear(32, classes)

        def forward(self, x):
            x = self.stem(x)
            x = torch.relu(self.body(x) + x)
            return self.fc(x.mean((2, 3)))

    return Net()


def test_a_pruned_int8_model_distilled_from_its_original_recovers_most_of_its_accuracy():
    data = load_dataset("digits", input_size=16, max_train=600, max_val=300, seed=0)
    torch.manual_seed(0)
    model = _user_net(data.num_classes)
    train(model, data.train_x, data.train_y, config=TrainConfig(steps=200, lr=0.05))
    original = accuracy(model, data.val_x, data.val_y)
    assert original > 0.8
    structure = analyse(model, data.train_x[:1])
    int8 = LayerPolicy(precision="int8", weight_bits=4, act_bits=8)
    policy = ModelPolicy.of(keep={g.name: 0.25 for g in structure.groups},
                            layers={name: int8 for name in structure.layers if name != "fc"})
    logits = original_logits(model, data)
    untuned = estimate_policy(model, policy, data, config=TrainConfig(steps=0), teacher_logits=logits)
    tuned = estimate_policy(model, policy, data, config=TrainConfig(steps=80, lr=0.02), teacher_logits=logits)
    assert tuned.accuracy > max(untuned.accuracy + 0.05, original - 0.15), (original, untuned.accuracy, tuned.accuracy)
    assert tuned.correct.shape == (300,) and tuned.accuracy == float(tuned.correct.float().mean())
    again = estimate_policy(model, policy, data, config=TrainConfig(steps=80, lr=0.02), teacher_logits=logits)
    assert again.accuracy == tuned.accuracy  # the same seed gives the same estimate
