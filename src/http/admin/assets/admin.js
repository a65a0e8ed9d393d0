(function () {
  document.querySelectorAll('button[data-copy]').forEach(function (button) {
    button.hidden = false;
    button.addEventListener('click', function () {
      var source = document.getElementById(button.getAttribute('data-copy'));
      var text = source ? source.textContent : '';
      var done = function () { button.textContent = 'Copied'; setTimeout(function () { button.textContent = 'Copy'; }, 1500); };
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(text).then(done, function () { select(source); });
      } else { select(source); }
    });
  });
  function select(node) {
    if (!node) { return; }
    var range = document.createRange(); range.selectNodeContents(node);
    var selection = window.getSelection(); selection.removeAllRanges(); selection.addRange(range);
  }
  var name = document.getElementById('name');
  var preview = document.getElementById('redirect-url');
  if (name && preview && preview.hasAttribute('data-prefix')) {
    var update = function () {
      var typed = name.value.trim();
      preview.textContent = preview.getAttribute('data-prefix') + (typed || '{name}') + '/callback';
    };
    name.addEventListener('input', update);
  }
})();
